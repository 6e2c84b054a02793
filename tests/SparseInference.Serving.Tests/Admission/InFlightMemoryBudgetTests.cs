using SparseInference.Serving.Admission;

namespace SparseInference.Serving.Tests.Admission;

public sealed class InFlightMemoryBudgetTests
{
    [Fact]
    public void Admit_WithinTheBudget_HoldsTheBytesUntilDisposed()
    {
        var budget = new InFlightMemoryBudget(1000);
        using (var lease = budget.Admit(600, "a request"))
        {
            Assert.Equal(600, budget.InUseBytes);
            Assert.Equal(600, lease.Bytes);
        }

        Assert.Equal(0, budget.InUseBytes);
    }

    [Fact]
    public void Admit_NoRoomNow_OverloadedWithRetryAfterNamingTheNumbers()
    {
        var budget = new InFlightMemoryBudget(1000);
        using var held = budget.Admit(600, "the first");
        var ex = Assert.Throws<InferenceException>(() => budget.Admit(500, "the second"));
        Assert.Equal(InferenceErrorKind.Overloaded, ex.Kind);
        Assert.Equal(InFlightMemoryBudget.RetryAfterSeconds, ex.RetryAfterSeconds);
        Assert.StartsWith("the second needs about 500 bytes", ex.Message);
        Assert.Contains("hold 600 bytes of the 1000 bytes budget", ex.Message);
        Assert.Equal(600, budget.InUseBytes);
    }

    [Fact]
    public void Admit_MoreThanTheWholeBudget_ResourceExhaustedWhateverIsFree()
    {
        var budget = new InFlightMemoryBudget(1000);
        var ex = Assert.Throws<InferenceException>(() => budget.Admit(1001, "a huge request"));
        Assert.Equal(InferenceErrorKind.ResourceExhausted, ex.Kind);
        Assert.Null(ex.RetryAfterSeconds);
        Assert.Contains("more than the server's whole in-flight budget", ex.Message);
        Assert.Equal(0, budget.InUseBytes);
    }

    [Fact]
    public void Dispose_Twice_GivesTheBytesBackOnce()
    {
        var budget = new InFlightMemoryBudget(1000);
        using var other = budget.Admit(300, "another");
        var lease = budget.Admit(200, "a request");
        lease.Dispose();
        lease.Dispose();
        Assert.Equal(300, budget.InUseBytes);
    }

    [Fact]
    public async Task Admit_ConcurrentRequests_NeverHoldMoreThanTheBudget()
    {
        var budget = new InFlightMemoryBudget(10_000);
        long peak = 0;
        var admitted = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 2000; i++)
            {
                try
                {
                    using var lease = budget.Admit(3000, "a request");
                    Interlocked.Increment(ref admitted);
                    var now = budget.InUseBytes;
                    long seen;
                    while (now > (seen = Interlocked.Read(ref peak)) && Interlocked.CompareExchange(ref peak, now, seen) != seen)
                    {
                    }
                }
                catch (InferenceException ex) when (ex.Kind == InferenceErrorKind.Overloaded)
                {
                }
            }
        })));

        Assert.True(peak <= 10_000, $"peak {peak}");
        Assert.True(admitted > 0);
        Assert.Equal(0, budget.InUseBytes);
    }
}
