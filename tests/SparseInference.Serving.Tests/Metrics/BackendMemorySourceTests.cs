using SparseInference.Serving.Metrics;
using SparseInference.Serving.Tests.TestDoubles;
using SparseInference.Tensors;

namespace SparseInference.Serving.Tests.Metrics;

/// <summary>The configured backend's memory as the metrics read it, through the <see cref="IDeviceMemory"/> capability.</summary>
public sealed class BackendMemorySourceTests
{
    [Fact]
    public void Read_OpenBackendReportingMemory_WhatTheBackendReports()
    {
        var (backend, control) = TestAccelerator.Create();
        control.MemoryReading = (FreeBytes: 30, TotalBytes: 100);
        control.UseReading = new DeviceMemoryUse(WeightBytes: 12, WorkspaceBytes: 3, ActivationBytes: 4, CachedBytes: 5);
        var source = new BackendMemorySource(() => backend, "cuda:1");

        Assert.Equal("cuda:1", source.Device);
        Assert.Equal((30L, 100L), source.DeviceMemory());
        Assert.Equal(control.UseReading, source.Use());
        Assert.Equal(new DeviceMemoryReading(70, 100), new BackendDeviceMemoryProbe(source).Read());
    }

    [Fact]
    public void Read_BackendNotOpenYet_NoReading()
    {
        var source = new BackendMemorySource(() => null, "cuda:0");

        Assert.Null(source.DeviceMemory());
        Assert.Null(source.Use());
        Assert.Null(new BackendDeviceMemoryProbe(source).Read());
    }

    [Fact]
    public void Read_BackendClosedDuringShutdown_NoReadingRatherThanAFailedScrape()
    {
        var (backend, _) = TestAccelerator.Create();
        var source = new BackendMemorySource(() => backend, "cuda:0");
        backend.Dispose();

        Assert.Null(source.DeviceMemory());
        Assert.Null(source.Use());
    }

    [Fact]
    public void Read_DeviceFault_NoReading()
    {
        var (backend, control) = TestAccelerator.Create();
        control.FaultType = typeof(TimeoutException);
        control.ReadFailure = new TimeoutException("the device stopped answering");
        var source = new BackendMemorySource(() => backend, "cuda:0");

        Assert.Null(source.DeviceMemory());
        Assert.Null(source.Use());
    }

    [Fact]
    public void Read_FailureThatIsNotTheDevices_Surfaces()
    {
        var (backend, control) = TestAccelerator.Create();
        control.ReadFailure = new InvalidOperationException("a bug in the reading");
        var source = new BackendMemorySource(() => backend, "cuda:0");

        Assert.Throws<InvalidOperationException>(() => source.DeviceMemory());
    }

    [Fact]
    public void Read_CpuBackendWithoutTheCapability_NoReading()
    {
        using var cpu = new Tensors.Cpu.CpuBackend();
        var source = new BackendMemorySource(() => cpu, "cpu");

        Assert.Null(source.DeviceMemory());
        Assert.Null(source.Use());
    }
}
