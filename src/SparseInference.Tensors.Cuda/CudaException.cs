namespace SparseInference.Tensors.Cuda;

/// <summary>A CUDA driver, cuBLAS or NVRTC call failed; the message names the call and the error.</summary>
public sealed class CudaException : Exception
{
    public CudaException(string call, int code, string error)
        : base($"{call} failed: {error} (code {code})")
    {
        Call = call;
        Code = code;
        Error = error;
    }

    public CudaException(string message) : base(message)
    {
        Call = "";
        Error = message;
    }

    /// <summary>The native function that failed.</summary>
    public string Call { get; }

    /// <summary>The native status code.</summary>
    public int Code { get; }

    /// <summary>The library's name or text for the status.</summary>
    public string Error { get; }
}
