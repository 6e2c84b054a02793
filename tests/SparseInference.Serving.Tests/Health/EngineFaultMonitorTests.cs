using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using SparseInference.Serving.Health;
using SparseInference.Serving.Hosting;
using SparseInference.Serving.Tests.TestDoubles;
using SparseInference.Tensors;

namespace SparseInference.Serving.Tests.Health;

public sealed class EngineFaultMonitorTests
{
    private readonly ServerState _state = new();

    private EngineFaultMonitor Monitor(int threshold, ConfiguredBackend? backend = null) =>
        new(_state, Options.Create(new SparseInferenceOptions { Health = new HealthOptions { DeviceFaultThreshold = threshold } }), NullLogger<EngineFaultMonitor>.Instance, backend);

    /// <summary>A configured accelerator whose errors are <see cref="TimeoutException"/>s, opened as the first load opens it.</summary>
    private static ConfiguredBackend OpenedAccelerator()
    {
        var (backend, _) = TestAccelerator.Create();
        var configured = new ConfiguredBackend(
            Options.Create(new SparseInferenceOptions { Device = "cuda" }), [new TestAcceleratorProvider(backend)], NullLogger<ConfiguredBackend>.Instance);
        Assert.Same(backend, configured.Backend);
        return configured;
    }

    [Fact]
    public void ReportFailure_ThresholdDeviceFaultsInARow_LivenessFailsWithReason()
    {
        var monitor = Monitor(3);
        monitor.ReportFailure(new DeviceFaultException("lost"));
        monitor.ReportFailure(new DeviceFaultException("lost"));
        Assert.True(_state.IsLive);

        monitor.ReportFailure(new DeviceFaultException("device lost"));

        Assert.False(_state.IsLive);
        Assert.Contains("3 consecutive engine forwards failed", _state.FaultReason);
        Assert.Contains("device lost", _state.FaultReason);
    }

    [Fact]
    public void ReportSuccess_BetweenFaults_ResetsTheCount()
    {
        var monitor = Monitor(3);
        for (var i = 0; i < 10; i++)
        {
            monitor.ReportFailure(new DeviceFaultException("transient"));
            monitor.ReportFailure(new DeviceFaultException("transient"));
            monitor.ReportSuccess();
        }

        Assert.True(_state.IsLive);
        Assert.Equal(0, monitor.ConsecutiveDeviceFaults);
    }

    [Fact]
    public void ReportFailure_ErrorsThatAreNotDeviceErrors_NeverFailLiveness()
    {
        var monitor = Monitor(2);
        for (var i = 0; i < 10; i++)
        {
            monitor.ReportFailure(new InvalidOperationException("bug for one input"));
            monitor.ReportFailure(new OperationCanceledException());
        }

        Assert.True(_state.IsLive);
        Assert.Equal(0, monitor.ConsecutiveDeviceFaults);
    }

    [Fact]
    public void ReportFailure_BackendDeviceErrorWrappedInAnotherException_Counts()
    {
        var monitor = Monitor(2, OpenedAccelerator());
        monitor.ReportFailure(new InvalidOperationException("forward failed", new TimeoutException("the device stopped answering")));
        monitor.ReportFailure(new AggregateException(new TimeoutException("the device stopped answering")));

        Assert.False(_state.IsLive);
    }

    [Fact]
    public void ReportFailure_ErrorsOfTheDeviceKindOnTheCpu_NeverFailLiveness()
    {
        // The same exceptions mean nothing when no accelerator was opened: the backend classifies only its own.
        var monitor = Monitor(2, new ConfiguredBackend(
            Options.Create(new SparseInferenceOptions()), [new TestAcceleratorProvider(TestAccelerator.Create().Backend)], NullLogger<ConfiguredBackend>.Instance));
        for (var i = 0; i < 10; i++)
        {
            monitor.ReportFailure(new TimeoutException("a slow client"));
        }

        Assert.True(_state.IsLive);
    }

    [Fact]
    public void ReportFailure_ThresholdZero_TurnsTheCheckOff()
    {
        var monitor = Monitor(0);
        for (var i = 0; i < 100; i++)
        {
            monitor.ReportFailure(new DeviceFaultException("lost"));
        }

        Assert.True(_state.IsLive);
    }

    [Fact]
    public void MarkFaulted_AfterwardsSuccess_StaysNotLive()
    {
        var monitor = Monitor(1);
        monitor.ReportFailure(new DeviceFaultException("sticky"));
        monitor.ReportSuccess();

        Assert.False(_state.IsLive);
    }
}
