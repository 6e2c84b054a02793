namespace SparseInference.Models.Attention;

/// <summary>The contract's arithmetic: rounding, budgets and seeded uniforms.</summary>
public static class PatternMath
{
    /// <summary><c>round(x) = floor(x + 0.5)</c> in IEEE double.</summary>
    public static long Round(double x) => (long)Math.Floor(x + 0.5);

    /// <summary><c>clamp(round((1 − s) · count), 1, count)</c>: key blocks per query block, tokens kept by topk or gated.</summary>
    public static int Budget(double sparsity, int count)
    {
        long k = Round((1.0 - sparsity) * count);
        return (int)Math.Clamp(k, 1, count);
    }

    /// <summary>SplitMix64 finaliser.</summary>
    public static ulong Mix(ulong z)
    {
        unchecked
        {
            z += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary><c>u(seed, layer, head, qb, kb)</c> in (0, 1).</summary>
    public static double Uniform(ulong seed, int layer, int head, int queryBlock, int keyBlock)
    {
        ulong h = Mix(Mix(Mix(Mix(Mix(seed) ^ (ulong)layer) ^ (ulong)head) ^ (ulong)queryBlock) ^ (ulong)keyBlock);
        return ((h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    }

    /// <summary>Gumbel noise <c>−ln(−ln u)</c>.</summary>
    public static double Gumbel(ulong seed, int layer, int head, int queryBlock, int keyBlock)
        => -Math.Log(-Math.Log(Uniform(seed, layer, head, queryBlock, keyBlock)));
}
