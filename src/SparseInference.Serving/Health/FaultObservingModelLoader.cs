using SparseInference.Models;
using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Health;

/// <summary>
/// Wraps a model loader so that every forward of every model it loads reports to <see cref="EngineFaultMonitor"/>.
/// The wrapped model keeps the inner model's disposal.
/// </summary>
internal sealed class FaultObservingModelLoader(IInferenceModelLoader inner, EngineFaultMonitor monitor) : IInferenceModelLoader
{
    public IInferenceModelLoader Inner => inner;

    public IInferenceModel Load(string versionDirectory) => new ObservedModel(inner.Load(versionDirectory), monitor);

    private sealed class ObservedModel(IInferenceModel model, EngineFaultMonitor monitor) : IInferenceModel, IDisposable
    {
        public ModelConfiguration Configuration => model.Configuration;

        public ForwardResult Forward(ForwardInput input, AttentionSpec attention)
        {
            ForwardResult result;
            try
            {
                result = model.Forward(input, attention);
            }
            catch (Exception ex)
            {
                monitor.ReportFailure(ex);
                throw;
            }

            monitor.ReportSuccess();
            return result;
        }

        public void Dispose() => (model as IDisposable)?.Dispose();
    }
}
