using SparseInference.Tensors.Cpu;

namespace SparseInference.Tensors.Tests.Cpu;

public sealed class CpuWorkerPoolTests
{
    [Fact]
    public void Run_ManyCalls_RunsEveryItemExactlyOnce()
    {
        using var pool = new CpuWorkerPool(3);
        for (var call = 0; call < 300; call++)
        {
            var hits = new int[1 + call % 97];
            pool.Run(hits.Length, i => Interlocked.Increment(ref hits[i]));
            Assert.All(hits, h => Assert.Equal(1, h));
            if (call % 100 == 99) Thread.Sleep(5); // let the workers fall asleep and be woken again
        }
    }

    [Fact]
    public void Run_BodyThrows_RethrowsOnCallerAndPoolStaysUsable()
    {
        using var pool = new CpuWorkerPool(2);

        var ex = Assert.Throws<InvalidOperationException>(() => pool.Run(50, i =>
        {
            if (i == 17) throw new InvalidOperationException("item 17");
        }));
        Assert.Equal("item 17", ex.Message);

        var count = 0;
        pool.Run(10, _ => Interlocked.Increment(ref count));
        Assert.Equal(10, count);
    }

    [Fact]
    public async Task Run_ConcurrentAndNestedCallers_AllComplete()
    {
        using var pool = new CpuWorkerPool(2);
        var total = 0;
        var callers = Enumerable.Range(0, 3).Select(_ => Task.Run(() =>
        {
            for (var r = 0; r < 100; r++)
            {
                pool.Run(8, _ => pool.Run(4, _ => Interlocked.Increment(ref total)));
            }
        })).ToArray();

        await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(3 * 100 * 8 * 4, total);
    }

    [Fact]
    public void CpuBackend_WorkerPoolAndParallelFor_GiveBitIdenticalResults()
    {
        using var forBackend = new CpuBackend(2, CpuThreading.ParallelFor);
        using var poolBackend = new CpuBackend(2, CpuThreading.WorkerPool);
        var a = TestData.Uniform(1, 150 * 70);
        var w = TestData.Uniform(2, 90 * 70);
        var (q, k, v) = CpuBackendAttentionTests.Qkv(2, 2, 50, 16, seed: 3);

        float[] Run(CpuBackend be)
        {
            using var ta = be.FromHost(a, 150, 70);
            using var tw = be.FromHost(w, 90, 70);
            using var tc = be.Allocate(150, 90);
            be.Linear(ta, tw, null, tc, Activation.Gelu);
            using var tq = be.FromHost(q, 2, 2, 50, 16);
            using var tk = be.FromHost(k, 2, 2, 50, 16);
            using var tv = be.FromHost(v, 2, 2, 50, 16);
            using var to = be.Allocate(2, 2, 50, 16);
            be.Attention(tq, tk, tv, to, 2, [50, 33]);
            return [.. tc.ToArray<float>(), .. to.ToArray<float>()];
        }

        Assert.Equal(Run(forBackend), Run(poolBackend));
    }
}
