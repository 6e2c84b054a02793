using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SparseInference.Models;
using SparseInference.Server.Hosting;
using SparseInference.Serving.Hosting;
using SparseInference.Serving.Repository;
using SparseInference.Tensors;

namespace SparseInference.Server.FunctionalTests.Infrastructure;

/// <summary>
/// The real server whose engine can be made to fail on demand: the real engine loader, wrapped so that a forward of
/// the <see cref="ServerFixture.BatchedName"/> model throws when its input holds a row starting with
/// <see cref="PoisonValue"/> (an engine exception for that request's batch), or while device faults are armed.
/// </summary>
public class FaultInjectionServerFixture : ServerFixture
{
    /// <summary>A request whose first value is this makes the forward of any batch holding it throw.</summary>
    public const float PoisonValue = 7777f;

    public const int DeviceFaultThreshold = 3;

    private int _deviceFaults;

    /// <summary>Makes the next <paramref name="count"/> forwards of the batched model throw a device error (-1: all of them).</summary>
    public void ArmDeviceFaults(int count) => Volatile.Write(ref _deviceFaults, count);

    protected override void AddSettings(IDictionary<string, string?> settings) =>
        settings["SparseInference:Health:DeviceFaultThreshold"] = DeviceFaultThreshold.ToString();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureTestServices(services => services.AddSingleton<IInferenceModelLoader>(sp =>
            new FaultyLoader(
                new EngineModelLoader(sp.GetRequiredService<ConfiguredBackend>(), sp.GetRequiredService<ILogger<EngineModelLoader>>()),
                this)));
    }

    private Exception? NextFault(string directory, ForwardInput input)
    {
        if (!directory.Contains(Path.DirectorySeparatorChar + BatchedName + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            return null;
        }

        while (true)
        {
            var armed = Volatile.Read(ref _deviceFaults);
            if (armed == 0)
            {
                break;
            }

            if (armed < 0 || Interlocked.CompareExchange(ref _deviceFaults, armed - 1, armed) == armed)
            {
                return new DeviceFaultException("injected device fault: the device stopped answering");
            }
        }

        var rowLength = input.Values!.Length / input.Batch;
        for (var b = 0; b < input.Batch; b++)
        {
            if (input.Values[b * rowLength] == PoisonValue)
            {
                return new InvalidOperationException("injected engine fault for a poisoned row");
            }
        }

        return null;
    }

    private sealed class FaultyLoader(IInferenceModelLoader inner, FaultInjectionServerFixture faults) : IInferenceModelLoader
    {
        public IInferenceModel Load(string versionDirectory) => new FaultyModel(inner.Load(versionDirectory), versionDirectory, faults);
    }

    private sealed class FaultyModel(IInferenceModel model, string directory, FaultInjectionServerFixture faults) : IInferenceModel
    {
        public ModelConfiguration Configuration => model.Configuration;

        public ForwardResult Forward(ForwardInput input, AttentionSpec attention) =>
            faults.NextFault(directory + Path.DirectorySeparatorChar, input) is { } fault ? throw fault : model.Forward(input, attention);
    }
}
