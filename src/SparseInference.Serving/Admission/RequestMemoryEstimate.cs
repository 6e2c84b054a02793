using SparseInference.Models;
using SparseInference.Serving.Repository;

namespace SparseInference.Serving.Admission;

/// <summary>
/// An upper estimate of the bytes one request holds from admission until its response is written, from its tensor
/// sizes and the model's dimensions: the parsed input and its copies, the forward's activation workspace, the
/// attention kernels' scratch, and the outputs with the copies made to split a batch and to serialise them.
/// The request body itself is admitted separately by the transport that read it.
/// </summary>
public static class RequestMemoryEstimate
{
    /// <summary>Objects, buffers and JSON chunks a request holds whatever its size.</summary>
    public const long PerRequestOverheadBytes = 64 * 1024;

    /// <param name="paddingAllowance">
    /// Factor on the activations for a request that may be batched with longer ones: its rows are padded to theirs,
    /// and the batcher's padding-waste bound w caps a batch's rows at 1/(1−w) times the sum of its requests' own.
    /// </param>
    public static long Bytes(ModelConfiguration configuration, ForwardInput input, AttentionSpec spec, double paddingAllowance = 1.0)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(input);
        const long F = sizeof(float);
        long rows = (long)input.Batch * input.Time;
        var tokens = configuration.InputKind == ModelConfiguration.TokenInput;
        long inputColumns = tokens ? 1 : configuration.InputChannels;
        long d = configuration.DModel;

        // The parsed tensor, a batch's concatenated copy and the encoder's copy with padding cleared.
        var inputs = 3 * rows * inputColumns * F;

        // The encoder's workspace: input rows, residual stream, normalised rows, qkv (3d), attention output,
        // feed-forward hidden and head output for every row (EncoderWorkspace).
        var workspace = rows * (inputColumns + (6 * d) + configuration.DFf + configuration.OutputDim) * F;
        var activations = (long)Math.Ceiling(workspace * Math.Max(1.0, paddingAllowance));

        // Per worker thread, one sequence's keys for a head and the pooled block scores of block-sparse selection.
        var blocks = (input.Time / Math.Max(1, spec.BlockSize)) + 1L;
        var scratch = Environment.ProcessorCount * (((long)input.Time * (d + 4)) + (blocks * blocks)) * F;

        // Forward output, its share split from a batch, and one serialised copy (binary tensor data, gRPC raw
        // contents); reconstruction models add the per-step score and anomaly flag, each serialised too.
        var classification = configuration.Head == ModelConfiguration.ClassificationHead;
        var outputValues = (classification ? input.Batch : rows) * (long)configuration.OutputDim;
        var outputs = 3 * outputValues * F;
        if (configuration.Head == ModelConfiguration.ReconstructionHead)
        {
            outputs += 2 * rows * (F + sizeof(bool));
        }

        return inputs + activations + scratch + outputs + PerRequestOverheadBytes;
    }
}
