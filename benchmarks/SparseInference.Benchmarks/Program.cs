using SparseInference.Benchmarks.Models;

// Mode switch: each suite is a class of its own, callable from here.
return args.FirstOrDefault() switch
{
    "forward" => ForwardBenchmark.Run(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.WriteLine("usage: SparseInference.Benchmarks forward [--times 512,2048,8192] [--batches 1,8] [--patterns window,bigbird] [--sparsities 0.75,0.9] [--block-size 64] [--threads 2] [--no-pytorch]");
    return 2;
}
