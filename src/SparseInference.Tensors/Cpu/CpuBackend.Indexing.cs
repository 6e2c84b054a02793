namespace SparseInference.Tensors.Cpu;

// Index-driven ops: embedding lookup, row gather, row scatter-add, per-row top-k.
public sealed unsafe partial class CpuBackend
{
    public void Embedding(Tensor table, Tensor ids, Tensor output)
    {
        var pt = Bytes(table, nameof(table));
        var pi = I32(ids, nameof(ids));
        var po = Bytes(output, nameof(output));
        if (table.Rank != 2) throw new ArgumentException($"table: expected rank 2 [V, D], got {table.Shape}.", nameof(table));
        if (output.DType != table.DType) throw new ArgumentException($"output: expected dtype {table.DType}, got {output.DType}.", nameof(output));
        int vocab = table.Dim(0), width = table.Dim(1);
        var expected = new Shape([.. ids.Shape.Dims, width]);
        if (output.Shape != expected) throw new ArgumentException($"output: expected shape {expected}, got {output.Shape}.", nameof(output));
        CopyRows(pt, vocab, (long)width * table.DType.SizeInBytes(), pi, ids.ElementCount, po, "ids");
        GC.KeepAlive(table);
        GC.KeepAlive(ids);
        GC.KeepAlive(output);
    }

    public void Gather(Tensor source, Tensor indices, Tensor output)
    {
        var ps = Bytes(source, nameof(source));
        var pi = I32(indices, nameof(indices));
        var po = Bytes(output, nameof(output));
        if (source.Rank < 1) throw new ArgumentException($"source: expected rank ≥ 1, got {source.Shape}.", nameof(source));
        if (indices.Rank != 1) throw new ArgumentException($"indices: expected rank 1 [M], got {indices.Shape}.", nameof(indices));
        if (output.DType != source.DType) throw new ArgumentException($"output: expected dtype {source.DType}, got {output.DType}.", nameof(output));
        var dims = source.Shape.ToArray();
        dims[0] = indices.Dim(0);
        var expected = new Shape(dims);
        if (output.Shape != expected) throw new ArgumentException($"output: expected shape {expected}, got {output.Shape}.", nameof(output));
        var rowBytes = source.Shape.ProductOf(1, source.Rank) * source.DType.SizeInBytes();
        CopyRows(ps, source.Dim(0), rowBytes, pi, indices.ElementCount, po, "indices");
        GC.KeepAlive(source);
        GC.KeepAlive(indices);
        GC.KeepAlive(output);
    }

    public void ScatterAddRows(Tensor source, Tensor indices, Tensor destination, Tensor? rowScale = null)
    {
        var ps = F32(source, nameof(source));
        var pi = I32(indices, nameof(indices));
        var pd = F32(destination, nameof(destination));
        if (source.Rank < 1 || destination.Rank != source.Rank)
        {
            throw new ArgumentException($"destination: expected rank {source.Rank} like source {source.Shape}, got {destination.Shape}.", nameof(destination));
        }
        if (indices.Rank != 1 || indices.Dim(0) != source.Dim(0))
        {
            throw new ArgumentException($"indices: expected shape [{source.Dim(0)}], got {indices.Shape}.", nameof(indices));
        }
        for (var a = 1; a < source.Rank; a++)
        {
            if (source.Dim(a) != destination.Dim(a))
            {
                throw new ArgumentException($"destination: expected dimension {a} = {source.Dim(a)} like source, got {destination.Dim(a)}.", nameof(destination));
            }
        }
        float* pscale = null;
        if (rowScale is not null)
        {
            pscale = F32(rowScale, nameof(rowScale));
            if (rowScale.Rank != 1 || rowScale.Dim(0) != source.Dim(0))
            {
                throw new ArgumentException($"rowScale: expected shape [{source.Dim(0)}], got {rowScale.Shape}.", nameof(rowScale));
            }
        }
        var m = source.Dim(0);
        var rows = destination.Dim(0);
        var width = checked((int)source.Shape.ProductOf(1, source.Rank));
        var seen = new bool[rows];
        for (var i = 0; i < m; i++)
        {
            var idx = pi[i];
            if ((uint)idx >= (uint)rows) throw new ArgumentOutOfRangeException(nameof(indices), $"indices[{i}]: expected 0 ≤ index < {rows}, got {idx}.");
            if (seen[idx]) throw new ArgumentException($"indices[{i}]: expected distinct indices, {idx} repeats.", nameof(indices));
            seen[idx] = true;
        }
        for (var i = 0; i < m; i++)
        {
            var src = Row(ps, i, width);
            var dst = Row(pd, pi[i], width);
            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(src, pscale == null ? 1f : pscale[i], dst, dst);
        }
        GC.KeepAlive(source);
        GC.KeepAlive(indices);
        GC.KeepAlive(destination);
        GC.KeepAlive(rowScale);
    }

    public void TopK(Tensor x, int k, Tensor values, Tensor indices)
    {
        var px = F32(x, nameof(x));
        var pv = F32(values, nameof(values));
        var pi = I32(indices, nameof(indices));
        var n = LastDim(x, nameof(x));
        if (k < 0 || k > n) throw new ArgumentOutOfRangeException(nameof(k), k, $"k: expected 0 ≤ k ≤ {n} (the last dimension of x).");
        var dims = x.Shape.ToArray();
        dims[^1] = k;
        var expected = new Shape(dims);
        if (values.Shape != expected) throw new ArgumentException($"values: expected shape {expected}, got {values.Shape}.", nameof(values));
        if (indices.Shape != expected) throw new ArgumentException($"indices: expected shape {expected}, got {indices.Shape}.", nameof(indices));
        if (k > 0)
        {
            _parallel.ForRange(x.Shape.LeadingCount, 4L * n, (s, e) =>
            {
                var scratch = new int[n];
                for (var r = s; r < e; r++)
                {
                    var row = new ReadOnlySpan<float>(px + r * n, n);
                    TopKSelect.Select(row, k, scratch);
                    for (var j = 0; j < k; j++)
                    {
                        var idx = scratch[j];
                        pi[r * k + j] = idx;
                        pv[r * k + j] = row[idx];
                    }
                }
            });
        }
        GC.KeepAlive(x);
        GC.KeepAlive(values);
        GC.KeepAlive(indices);
    }

    private static void CopyRows(byte* table, int rows, long rowBytes, int* index, long count, byte* output, string indexName)
    {
        for (long i = 0; i < count; i++)
        {
            var idx = index[i];
            if ((uint)idx >= (uint)rows)
            {
                throw new ArgumentOutOfRangeException(indexName, $"{indexName}[{i}]: expected 0 ≤ index < {rows}, got {idx}.");
            }
            Buffer.MemoryCopy(table + idx * rowBytes, output + i * rowBytes, rowBytes, rowBytes);
        }
    }
}
