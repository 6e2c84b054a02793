using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SparseInference.Models.Compute;

/// <summary>
/// FMA and broadcast through the x86 intrinsics where present: on .NET 10 the portable
/// <c>Vector256.FusedMultiplyAdd</c> / <c>Vector256.Create(float)</c> pair measured about 3× slower in the GEMM
/// micro-kernel than <c>vfmadd</c> with a memory broadcast. Other machines take the portable path.
/// </summary>
internal static unsafe class Simd
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Fmadd(Vector256<float> a, Vector256<float> b, Vector256<float> c)
        => Fma.IsSupported ? Fma.MultiplyAdd(a, b, c) : Vector256.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Broadcast(float* p)
        => Avx.IsSupported ? Avx.BroadcastScalarToVector256(p) : Vector256.Create(*p);
}
