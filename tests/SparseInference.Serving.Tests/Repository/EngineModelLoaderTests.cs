using SparseInference.Models;
using SparseInference.Serving.Repository;
using SparseInference.Serving.Tests.Infrastructure;

namespace SparseInference.Serving.Tests.Repository;

public sealed class EngineModelLoaderTests
{
    private static readonly AttentionSpec Dense = new("dense");

    [Fact]
    public void Forward_AfterDispose_ReleasedWeightsAnswerUnavailable()
    {
        var loader = NewLoader();
        var model = loader.Load(DefaultModelVersion());
        Assert.Equal(Shape(model), model.Forward(Window(model), Dense).Shape);

        ((IDisposable)model).Dispose();
        ((IDisposable)model).Dispose(); // a second unload of the same version is harmless

        var ex = Assert.Throws<InferenceException>(() => model.Forward(Window(model), Dense));
        Assert.Equal(InferenceErrorKind.Unavailable, ex.Kind);
        Assert.Contains("unloaded", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dispose_WhileForwardsRun_EveryForwardStillAnswers()
    {
        var loader = NewLoader();
        var model = loader.Load(DefaultModelVersion());
        var input = Window(model);
        var expected = model.Forward(input, Dense).Output;

        // Forwards started before the unload keep the weights alive until they return; none runs on released memory:
        // each caller keeps going until the unload is done and then some, and a forward that starts after the last
        // reference went is refused.
        var unloaded = 0;
        var running = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            var outputs = new List<float[]>();
            for (var afterUnload = 0; afterUnload < 50;)
            {
                try
                {
                    outputs.Add(model.Forward(input, Dense).Output);
                }
                catch (InferenceException ex) when (ex.Kind == InferenceErrorKind.Unavailable)
                {
                    break;
                }

                afterUnload += Volatile.Read(ref unloaded);
            }

            return outputs;
        })).ToArray();
        await Task.Delay(20);
        ((IDisposable)model).Dispose();
        Volatile.Write(ref unloaded, 1);

        foreach (var outputs in await Task.WhenAll(running))
        {
            Assert.All(outputs, output => Assert.Equal(expected, output));
        }
    }

    private static EngineModelLoader NewLoader() => CpuModelLoader.Create();

    private static ForwardInput Window(IInferenceModel model)
    {
        var c = model.Configuration;
        const int time = 64;
        return new ForwardInput
        {
            Batch = 1,
            Time = time,
            Values = Enumerable.Range(0, time * c.InputChannels).Select(i => MathF.Sin(0.1f * i)).ToArray(),
        };
    }

    private static int[] Shape(IInferenceModel model) => [1, 64, model.Configuration.OutputDim];

    private static string DefaultModelVersion()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SparseInference.sln")))
            {
                return Path.Combine(dir.FullName, "models", "skab-pump", "1");
            }
        }

        throw new DirectoryNotFoundException($"no SparseInference.sln above {AppContext.BaseDirectory}");
    }
}
