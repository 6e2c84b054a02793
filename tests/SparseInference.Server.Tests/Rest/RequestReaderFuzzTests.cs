using System.Diagnostics;
using System.Text;
using Google.Protobuf;
using SparseInference.Serving.Protocol;
using SparseInference.Serving.Protocol.Grpc;
using SparseInference.Server.Rest;
using SparseInference.Serving.Repository;
using SparseInference.Server.Grpc;
using SparseInference.Server.Tests.Reliability;
using SparseInference.Serving;
using SparseInference.Serving.Tests.TestDoubles;

namespace SparseInference.Server.Tests.Rest;

/// <summary>
/// Seeded fuzzing of the request readers without sockets: the REST body parser and the protobuf-to-request conversion,
/// each followed by the inference service's validation on a real repository. The only failures allowed are the
/// documented ones (<see cref="InferenceException"/>, protobuf's parse error, which the host answers with INTERNAL naming
/// the message); anything else is a defect that would surface as a 500. Iteration <c>i</c> uses seed
/// <c>(Seed * 1_000_003) + i</c>, so a failure is reproducible from its reported iteration.
/// </summary>
public sealed class RequestReaderFuzzTests : IDisposable
{
    private const int Seed = 424242;
    private const int Iterations = 20_000;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(8);

    private readonly TempRepository _temp = new();
    private readonly ModelRepository _repository;
    private readonly Microsoft.Extensions.DependencyInjection.ServiceProvider _services;
    private readonly InferenceService _service;

    public RequestReaderFuzzTests()
    {
        _temp.AddVersion("m", "1", channels: 2, maxSeqLen: 8, threshold: 0.1);
        _repository = _temp.Open();
        (_services, _service) = InferenceServiceKit.Build(_repository, new DirectInferenceExecutor(TimeProvider.System));
        _repository.Load("m"); // again, now that the variant router is bound to the repository's loads
    }

    public void Dispose()
    {
        _services.Dispose();
        _repository.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public async Task RestReaderAndValidation_MutatedBodies_ThrowOnlyInferenceExceptions()
    {
        var json = Encoding.UTF8.GetBytes(
            """{"id":"a","parameters":{"binary_data_output":false},"inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32","data":[[[1,2],[3,4]]]}],"outputs":[{"name":"score","parameters":{"binary_data":false}}]}""");
        var binaryHeader = Encoding.UTF8.GetBytes("""{"inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32","parameters":{"binary_data_size":16}}]}""");
        byte[] binary = [.. binaryHeader, .. new byte[16]];

        // The unmutated seeds are valid requests, so mutations start from inputs that reach the model.
        await _service.InferAsync(RestInferenceRequestReader.Parse(json, null, "m", null), CancellationToken.None);
        await _service.InferAsync(RestInferenceRequestReader.Parse(binary, binaryHeader.Length, "m", null), CancellationToken.None);

        var (run, outcomes) = await FuzzAsync(async random =>
        {
            var useBinary = random.Next(2) == 0;
            var body = FuzzMutator.Mutate(useBinary ? binary : json, random);
            int? headerLength = useBinary ? random.Next(4) switch { 0 => random.Next(-4, body.Length + 8), _ => Math.Min(binaryHeader.Length, body.Length) } : null;
            var request = RestInferenceRequestReader.Parse(body, headerLength, "m", null);
            await _service.InferAsync(request, CancellationToken.None);
        });

        Assert.True(outcomes["invalid"] > run / 4 && outcomes["ok"] > 0, $"{run} iterations: {string.Join(", ", outcomes)}");
    }

    [Fact]
    public async Task GrpcMessageAndRequestConversion_MutatedBytes_ThrowOnlyDocumentedErrors()
    {
        var valid = new ModelInferRequest
        {
            ModelName = "m",
            Id = "g",
            Inputs = { new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32", Shape = { 1, 2, 2 } } },
            RawInputContents = { ByteString.CopyFrom(new byte[16]) },
        };
        var typed = valid.Clone();
        typed.RawInputContents.Clear();
        typed.Inputs[0].Contents = new InferTensorContents { Fp32Contents = { 1, 2, 3, 4 } };
        byte[][] seeds = [valid.ToByteArray(), typed.ToByteArray()];

        var (run, outcomes) = await FuzzAsync(async random =>
        {
            var bytes = FuzzMutator.Mutate(seeds[random.Next(seeds.Length)], random);
            var request = GrpcInferenceService.ToInferenceRequest(ModelInferRequest.Parser.ParseFrom(bytes));
            await _service.InferAsync(request, CancellationToken.None);
        });

        Assert.True(outcomes["invalid"] > 0 && outcomes["ok"] > 0, $"{run} iterations: {string.Join(", ", outcomes)}");
    }

    private static async Task<(int Run, Dictionary<string, int> Outcomes)> FuzzAsync(Func<Random, Task> iteration)
    {
        var outcomes = new Dictionary<string, int> { ["ok"] = 0, ["invalid"] = 0 };
        var clock = Stopwatch.StartNew();
        var run = 0;
        for (; run < Iterations && clock.Elapsed < Budget; run++)
        {
            try
            {
                await iteration(new Random(unchecked((Seed * 1_000_003) + run)));
                outcomes["ok"]++;
            }
            catch (Exception ex) when (ex is InferenceException or InvalidProtocolBufferException)
            {
                outcomes["invalid"]++;
            }
            catch (Exception ex)
            {
                Assert.Fail($"iteration {run}: undocumented {ex.GetType().Name}: {ex.Message}\n{ex.StackTrace}");
            }
        }

        Assert.True(run >= 1000, $"only {run} iterations within {Budget.TotalSeconds} s");
        return (run, outcomes);
    }
}
