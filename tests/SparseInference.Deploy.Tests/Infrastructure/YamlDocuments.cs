using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace SparseInference.Deploy.Tests.Infrastructure;

/// <summary>YAML documents as JSON nodes, so that manifests and compose files are walked like JSON.</summary>
public static class YamlDocuments
{
    public static IReadOnlyList<JsonNode> Parse(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return stream.Documents
            .Where(d => d.RootNode is not YamlScalarNode { Value: null or "" })
            .Select(d => Convert(d.RootNode) ?? throw new InvalidDataException("YAML: expected a document, actual null"))
            .ToList();
    }

    public static JsonNode ParseSingle(string yaml)
    {
        var documents = Parse(yaml);
        return documents.Count == 1
            ? documents[0]
            : throw new InvalidDataException($"YAML: expected one document, actual {documents.Count}");
    }

    private static JsonNode? Convert(YamlNode node) => node switch
    {
        YamlMappingNode mapping => ConvertMapping(mapping),
        YamlSequenceNode sequence => new JsonArray(sequence.Children.Select(Convert).ToArray()),
        YamlScalarNode scalar => ConvertScalar(scalar),
        _ => throw new InvalidDataException($"YAML: unexpected node {node.NodeType}"),
    };

    private static JsonObject ConvertMapping(YamlMappingNode mapping)
    {
        var result = new JsonObject();
        foreach (var (key, value) in mapping.Children)
        {
            var name = ((YamlScalarNode)key).Value ?? "";
            if (name == "<<")
            {
                // YAML merge key: the merged mapping's entries, without overriding explicit ones.
                foreach (var (k, v) in ConvertMapping((YamlMappingNode)value))
                {
                    if (!mapping.Children.Keys.OfType<YamlScalarNode>().Any(s => s.Value == k))
                    {
                        result[k] = v?.DeepClone();
                    }
                }

                continue;
            }

            result[name] = Convert(value);
        }

        return result;
    }

    private static JsonNode? ConvertScalar(YamlScalarNode scalar)
    {
        var text = scalar.Value ?? "";
        if (scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded)
        {
            return JsonValue.Create(text);
        }

        return text switch
        {
            "" or "~" or "null" => null,
            "true" => JsonValue.Create(true),
            "false" => JsonValue.Create(false),
            _ when long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer) => JsonValue.Create(integer),
            _ => JsonValue.Create(text),
        };
    }
}
