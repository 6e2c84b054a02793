using System.Text;
using SparseInference.Serving.Protocol;
using SparseInference.Server.Rest;
using SparseInference.Serving;

namespace SparseInference.Server.Tests.Rest;

public sealed class RestInferenceRequestReaderTests
{
    private static InferenceRequest Parse(string json, byte[]? binary = null)
    {
        var header = Encoding.UTF8.GetBytes(json);
        return binary is null
            ? RestInferenceRequestReader.Parse(header, null, "m", null)
            : RestInferenceRequestReader.Parse((byte[])[.. header, .. binary], header.Length, "m", "2");
    }

    private static float[] Floats(InferenceInput input, int count) => input.Data.ReadFloat32(input, count);

    [Fact]
    public void Parse_FlatAndNestedData_DecodeToSameRowMajorValues()
    {
        var flat = Parse("""{"inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32","data":[1,2,3.5,-4e-1]}]}""").Inputs[0];
        var nested = Parse("""{"inputs":[{"data":[[[1,2],[3.5,-4e-1]]],"name":"input","shape":[1,2,2],"datatype":"FP32"}]}""").Inputs[0];
        Assert.Equal([1f, 2f, 3.5f, -0.4f], Floats(flat, 4));
        Assert.Equal(Floats(flat, 4), Floats(nested, 4));
        Assert.Equal([1L, 2, 2], nested.Shape);
    }

    [Fact]
    public void Parse_IdParametersAndOutputs_AreCarried()
    {
        var request = Parse("""
            {"id":"abc","parameters":{"variant":"w","binary_data_output":true,"n":3,"x":0.5},
             "inputs":[{"name":"input","shape":[1],"datatype":"FP32","data":[1]}],
             "outputs":[{"name":"score"},{"name":"output","parameters":{"binary_data":false}}]}
            """);
        Assert.Equal("abc", request.Id);
        Assert.Equal("w", request.Parameters["variant"].Value);
        Assert.Equal(3L, request.Parameters["n"].Value);
        Assert.Equal(0.5, request.Parameters["x"].Value);
        Assert.False(request.Parameters.ContainsKey("binary_data_output"));
        Assert.True(request.BinaryOutputByDefault);
        Assert.Equal([new RequestedOutput("score", true), new RequestedOutput("output", false)], request.Outputs);
    }

    [Fact]
    public void Parse_BinaryInputs_SliceBodyInDeclarationOrder()
    {
        var a = BitConverter.GetBytes(1.5f);
        var b = BitConverter.GetBytes(-2f).Concat(BitConverter.GetBytes(3f)).ToArray();
        var request = Parse("""
            {"inputs":[{"name":"a","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}},
                       {"name":"b","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}
            """, [.. a, .. b]);
        Assert.Equal("2", request.ModelVersion);
        Assert.Equal([1.5f], Floats(request.Inputs[0], 1));
        Assert.Equal([-2f, 3f], Floats(request.Inputs[1], 2));
    }

    [Theory]
    [InlineData("""{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":8}}]}""", "only 4 bytes")]
    [InlineData("""{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":2}}]}""", "add up to 2")]
    [InlineData("""{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1],"parameters":{"binary_data_size":4}}]}""", "not both")]
    public void Parse_BinarySizesInconsistent_ThrowsNamingSizes(string json, string fragment)
    {
        var ex = Assert.Throws<InferenceException>(() => Parse(json, new byte[4]));
        Assert.Contains(fragment, ex.Message);
    }

    [Theory]
    [InlineData("""{"inputs":[]}""", "non-empty array")]
    [InlineData("""{"id":"x"}""", "non-empty array")]
    [InlineData("""[1,2]""", "request body must be a JSON object, got a JSON array")]
    [InlineData("""{"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]}""", "inputs[0].name is missing")]
    [InlineData("""{"inputs":[{"name":"a","datatype":"FP32","data":[1]}]}""", "input 'a': field 'shape' is missing")]
    [InlineData("""{"inputs":[{"name":"a","shape":[1],"data":[1]}]}""", "input 'a': field 'datatype' is missing")]
    [InlineData("""{"inputs":[{"name":"a","shape":[1],"datatype":"FLOAT","data":[1]}]}""", "datatype 'FLOAT'")]
    [InlineData("""{"inputs":[{"name":"a","shape":[1.5],"datatype":"FP32","data":[1]}]}""", "inputs[0].shape[0] must be an integer")]
    [InlineData("""{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":"1"}]}""", "inputs[0].data must be a JSON array, got a JSON string")]
    [InlineData("""{"inputs":[{"name":"a","shape":[1],"datatype":"FP32"}]}""", "input 'a': field 'data' is missing")]
    [InlineData("""{"id":5,"inputs":[]}""", "field 'id' must be a string, got a JSON number")]
    [InlineData("""{"parameters":{"p":[1]},"inputs":[]}""", "parameters.p must be a string, bool or number")]
    [InlineData("""{"inputs":[{"name":"a",""", "malformed JSON")]
    [InlineData("""not json""", "malformed JSON")]
    public void Parse_MalformedRequest_ThrowsNamingField(string json, string fragment)
    {
        var ex = Assert.Throws<InferenceException>(() => Parse(json));
        Assert.Equal(InferenceErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains(fragment, ex.Message);
    }

    [Fact]
    public void Parse_HeaderLengthBeyondBody_Throws()
    {
        var ex = Assert.Throws<InferenceException>(() => RestInferenceRequestReader.Parse(new byte[10], 11, "m", null));
        Assert.Contains("Inference-Header-Content-Length", ex.Message);
        Assert.Contains("got 11", ex.Message);
    }

    [Theory]
    [InlineData("[1,2,3]", 2, "holds 3 elements, expected 2")]
    [InlineData("[1,true]", 2, "data[1] is a JSON boolean")]
    [InlineData("[1,null]", 2, "data[1] is a JSON null")]
    [InlineData("[[1],{\"a\":1}]", 2, "data[1] is a JSON object")]
    [InlineData("[1e39]", 1, "out of the FP32 range")]
    public void ReadFloat32_BadData_ThrowsNamingIndexOrCount(string data, int expected, string fragment)
    {
        var input = Parse($$"""{"inputs":[{"name":"a","shape":[{{expected}}],"datatype":"FP32","data":{{data}}}]}""").Inputs[0];
        var ex = Assert.Throws<InferenceException>(() => input.Data.ReadFloat32(input, expected));
        Assert.Contains("input 'a'", ex.Message);
        Assert.Contains(fragment, ex.Message);
    }

    [Fact]
    public void ReadIntegers_Int32OutOfRange_Throws()
    {
        var input = Parse("""{"inputs":[{"name":"ids","shape":[2],"datatype":"INT32","data":[1,3000000000]}]}""").Inputs[0];
        var ex = Assert.Throws<InferenceException>(() => input.Data.ReadIntegers(input, 2));
        Assert.Contains("data[1] is not an INT32 value", ex.Message);
    }
}
