namespace SparseInference.Models.Attention;

/// <summary>Block geometry of one sequence: valid length L, block size Bk and n = ceil(L / Bk) blocks.</summary>
public readonly record struct BlockGeometry
{
    public BlockGeometry(int length, int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        Length = length;
        BlockSize = blockSize;
        Blocks = (length + blockSize - 1) / blockSize;
    }

    public int Length { get; }

    public int BlockSize { get; }

    public int Blocks { get; }

    /// <summary>First position of block <paramref name="block"/>.</summary>
    public int Start(int block) => block * BlockSize;

    /// <summary>Valid positions in block <paramref name="block"/> (the last one may be short).</summary>
    public int Size(int block) => Math.Min(BlockSize, Length - block * BlockSize);
}
