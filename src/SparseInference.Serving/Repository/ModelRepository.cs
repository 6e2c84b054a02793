using System.Collections.Immutable;
using System.Globalization;
using Microsoft.Extensions.Logging;
using SparseInference.Models;

namespace SparseInference.Serving.Repository;

/// <summary>The state of one model in the repository, as the repository extension reports it.</summary>
public sealed record RepositoryEntry(string Name, string Version, string State, string Reason);

/// <summary>A model's servable set changed: <see cref="DefaultVersion"/> is null when it was unloaded.</summary>
public sealed record ModelChange(string Name, ModelVersion? DefaultVersion, IReadOnlyList<ModelVersion> Retired);

/// <summary>
/// The model repository: <c>&lt;root&gt;/&lt;name&gt;/&lt;version&gt;/{config.json, model.safetensors}</c> plus
/// <c>&lt;root&gt;/&lt;name&gt;/serving.json</c>. Models load at start and can be loaded or unloaded at run time;
/// readers see an immutable snapshot, so inference never waits on a load.
/// </summary>
public sealed partial class ModelRepository : IDisposable
{
    public const string ReadyState = "READY";
    public const string UnavailableState = "UNAVAILABLE";
    public const string ConfigFileName = "config.json";
    public const string WeightsFileName = "model.safetensors";

    private readonly IInferenceModelLoader _loader;
    private readonly ILogger<ModelRepository> _logger;
    private readonly Lock _writeLock = new();
    private ImmutableDictionary<string, ModelState> _models = ImmutableDictionary<string, ModelState>.Empty.WithComparers(StringComparer.Ordinal);

    public ModelRepository(string root, IInferenceModelLoader loader, ILogger<ModelRepository> logger)
    {
        Root = Path.GetFullPath(root);
        _loader = loader;
        _logger = logger;
    }

    public string Root { get; }

    /// <summary>
    /// Called under the repository's write lock after a model's servable versions change (load, reload, unload), before
    /// the replaced versions are disposed: the variant catalog and the batching queues follow the repository here.
    /// </summary>
    public event Action<ModelChange>? Changed;

    /// <summary>
    /// Called under the write lock with the version a load is about to make the model's default, before anything is
    /// published: a handler that throws refuses the load (its message is the reason) and the versions serving stay.
    /// Whoever follows <see cref="Changed"/> checks here everything its own handling would refuse.
    /// </summary>
    public event Action<ModelVersion>? Validating;

    /// <summary>Loads every model directory found under the root; a model that fails is recorded UNAVAILABLE with the reason.</summary>
    public void LoadAll()
    {
        foreach (var name in ListModelDirectories())
        {
            try
            {
                Load(name);
            }
            catch (Exception ex)
            {
                // Recorded as UNAVAILABLE with its reason (Load logs it); start-up goes on with the other models.
                if (ex is not InferenceException)
                {
                    Log.ModelLoadFailed(_logger, name, $"{ex.GetType().Name}: {ex.Message}");
                }
            }
        }
    }

    /// <summary>Loads (or reloads) a model; <paramref name="servingOverride"/> is a serving.json document used instead of the file.</summary>
    public void Load(string name, string? servingOverride = null)
    {
        ValidateName(name, "model name");
        var directory = ModelNames.CombineConfined(Root, name);
        if (!System.IO.Directory.Exists(directory))
        {
            throw new InferenceException(InferenceErrorKind.NotFound, $"model '{name}' is not in the repository (no directory '{directory}').");
        }

        lock (_writeLock)
        {
            var started = DateTimeOffset.UtcNow;
            Dictionary<string, ModelVersion>? versions = null;
            string defaultVersion;
            try
            {
                var manifest = ReadManifest(directory, servingOverride);
                versions = LoadVersions(name, directory, manifest);
                ValidateManifest(name, manifest, versions);
                defaultVersion = manifest.DefaultVersion ?? versions.Keys.OrderByDescending(VersionOrder).ThenByDescending(v => v, StringComparer.Ordinal).First();
                Validating?.Invoke(versions[defaultVersion]);
            }
            catch (Exception ex)
            {
                // Whatever a model's files or its override hold, the failure is this model's alone: any exception
                // (an overflow or an allocation a size provoked included) leaves it UNAVAILABLE with the reason.
                var reason = ex is InvalidDataException or IOException or InferenceException or ArgumentException or ModelFormatException or UnauthorizedAccessException
                    ? ex.Message
                    : $"{ex.GetType().Name}: {ex.Message}";
                Log.ModelLoadFailed(_logger, name, reason);
                foreach (var rejected in versions?.Values ?? Enumerable.Empty<ModelVersion>())
                {
                    (rejected.Model as IDisposable)?.Dispose();
                }

                // A failed reload keeps the versions already serving; only a model with none is marked UNAVAILABLE.
                if (!_models.TryGetValue(name, out var serving) || serving.Versions.Count == 0)
                {
                    Replace(name, ModelState.Unavailable(name, reason));
                }

                throw new InferenceException(InferenceErrorKind.InvalidArgument, $"failed to load model '{name}': {reason}", ex);
            }

            try
            {
                Replace(name, new ModelState(name, versions.ToImmutableDictionary(StringComparer.Ordinal), defaultVersion, ""));
            }
            catch (Exception ex)
            {
                // Validating should have refused whatever a follower of Changed cannot take; should one fail all the
                // same, the model must not stay READY with half its serving state: it becomes UNAVAILABLE, saying why.
                var reason = $"publishing the loaded versions failed: {ex.GetType().Name}: {ex.Message}";
                Log.ModelLoadFailed(_logger, name, reason);
                Replace(name, ModelState.Unavailable(name, reason));
                throw new InferenceException(InferenceErrorKind.Internal, $"failed to load model '{name}': {reason}", ex);
            }

            Log.ModelLoaded(_logger, name, string.Join(",", versions.Keys.Order(StringComparer.Ordinal)), (DateTimeOffset.UtcNow - started).TotalMilliseconds);
        }
    }

    /// <summary>Unloads a model: it stays listed, UNAVAILABLE, until loaded again.</summary>
    public void Unload(string name)
    {
        ValidateName(name, "model name");
        lock (_writeLock)
        {
            if (!_models.TryGetValue(name, out var state) && !System.IO.Directory.Exists(ModelNames.CombineConfined(Root, name)))
            {
                throw new InferenceException(InferenceErrorKind.NotFound, $"model '{name}' is not in the repository.");
            }

            Replace(name, ModelState.Unavailable(name, "unloaded"));
            Log.ModelUnloaded(_logger, name);
        }
    }

    /// <summary>Every model directory of the repository with its versions and state.</summary>
    public IReadOnlyList<RepositoryEntry> Index(bool readyOnly)
    {
        var snapshot = _models;
        var names = new SortedSet<string>(ListModelDirectories(), StringComparer.Ordinal);
        names.UnionWith(snapshot.Keys);
        var entries = new List<RepositoryEntry>();
        foreach (var name in names)
        {
            if (snapshot.TryGetValue(name, out var state) && state.Versions.Count > 0)
            {
                entries.AddRange(state.Versions.Keys.Order(StringComparer.Ordinal).Select(v => new RepositoryEntry(name, v, ReadyState, "")));
            }
            else if (!readyOnly)
            {
                entries.Add(new RepositoryEntry(name, "", UnavailableState, state?.Reason ?? "unloaded"));
            }
        }

        return entries;
    }

    /// <summary>Finds a servable version; null or empty <paramref name="version"/> means the model's default version.</summary>
    public ModelVersion Resolve(string name, string? version)
    {
        if (!ModelNames.TryValidate(name, "model name", out var error))
        {
            throw new InferenceException(InferenceErrorKind.NotFound, $"unknown model: {error}");
        }

        if (!_models.TryGetValue(name, out var state))
        {
            throw new InferenceException(InferenceErrorKind.NotFound, $"unknown model '{name}'.");
        }

        if (state.Versions.Count == 0)
        {
            throw new InferenceException(InferenceErrorKind.Unavailable, $"model '{name}' is not ready: {state.Reason.TrimEnd('.')}.");
        }

        var wanted = string.IsNullOrEmpty(version) ? state.DefaultVersion! : version;
        if (!state.Versions.TryGetValue(wanted, out var modelVersion))
        {
            throw new InferenceException(
                InferenceErrorKind.NotFound,
                $"unknown version '{wanted}' of model '{name}'; available versions: {string.Join(", ", state.Versions.Keys.Order(StringComparer.Ordinal))}.");
        }

        return modelVersion;
    }

    /// <summary>Version names of a loaded model, default first; empty when it is not loaded.</summary>
    public IReadOnlyList<string> Versions(string name) =>
        _models.TryGetValue(name, out var state)
            ? [.. state.Versions.Keys.OrderByDescending(VersionOrder).ThenByDescending(v => v, StringComparer.Ordinal)]
            : [];

    /// <summary>Every loaded version of every model.</summary>
    public IReadOnlyList<ModelVersion> LoadedVersions() =>
        [.. _models.Values.OrderBy(s => s.Name, StringComparer.Ordinal).SelectMany(s => s.Versions.Values.OrderBy(v => v.Version, StringComparer.Ordinal))];

    public void Dispose()
    {
        lock (_writeLock)
        {
            foreach (var state in _models.Values)
            {
                DisposeVersions(state);
            }

            _models = _models.Clear();
        }
    }

    private void Replace(string name, ModelState next)
    {
        var previous = _models.GetValueOrDefault(name);
        _models = _models.SetItem(name, next);
        var retired = previous is null ? [] : previous.Versions.Values.ToArray();
        foreach (var version in retired)
        {
            version.Retire();
        }

        var current = next.DefaultVersion is null ? null : next.Versions[next.DefaultVersion];
        try
        {
            Changed?.Invoke(new ModelChange(name, current, retired));
        }
        finally
        {
            if (previous is not null)
            {
                DisposeVersions(previous);
            }
        }
    }

    private static void DisposeVersions(ModelState state)
    {
        foreach (var v in state.Versions.Values)
        {
            (v.Model as IDisposable)?.Dispose();
        }
    }

    private IEnumerable<string> ListModelDirectories()
    {
        if (!System.IO.Directory.Exists(Root))
        {
            return [];
        }

        return System.IO.Directory.EnumerateDirectories(Root)
            .Select(Path.GetFileName)
            .Where(n => ModelNames.TryValidate(n, "model name", out _))
            .Select(n => n!)
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    private static ServingManifest ReadManifest(string directory, string? servingOverride)
    {
        if (servingOverride is not null)
        {
            return ServingManifest.Parse(System.Text.Encoding.UTF8.GetBytes(servingOverride), "config override");
        }

        var path = Path.Combine(directory, ServingManifest.FileName);
        return File.Exists(path) ? ServingManifest.Parse(File.ReadAllBytes(path), path) : new ServingManifest();
    }

    private Dictionary<string, ModelVersion> LoadVersions(string name, string directory, ServingManifest manifest)
    {
        var versions = new Dictionary<string, ModelVersion>(StringComparer.Ordinal);
        foreach (var versionDirectory in System.IO.Directory.EnumerateDirectories(directory).Order(StringComparer.Ordinal))
        {
            var version = Path.GetFileName(versionDirectory);
            if (!ModelNames.TryValidate(version, "version", out _) || !File.Exists(Path.Combine(versionDirectory, ConfigFileName)))
            {
                continue;
            }

            if (!File.Exists(Path.Combine(versionDirectory, WeightsFileName)))
            {
                throw new InvalidDataException($"version '{version}' of model '{name}' has no {WeightsFileName} in '{versionDirectory}'.");
            }

            IInferenceModel? model = null;
            try
            {
                model = _loader.Load(versionDirectory);
                versions[version] = new ModelVersion(name, version, versionDirectory, model, manifest);
            }
            catch
            {
                // The versions loaded so far are not published; release them (and a half-built one) now.
                (model as IDisposable)?.Dispose();
                foreach (var loaded in versions.Values)
                {
                    (loaded.Model as IDisposable)?.Dispose();
                }

                throw;
            }
        }

        if (versions.Count == 0)
        {
            throw new InvalidDataException($"model '{name}' has no version directory holding {ConfigFileName} and {WeightsFileName} under '{directory}'.");
        }

        return versions;
    }

    private static void ValidateManifest(string name, ServingManifest manifest, Dictionary<string, ModelVersion> versions)
    {
        if (manifest.DefaultVersion is not null && !versions.ContainsKey(manifest.DefaultVersion))
        {
            throw new InvalidDataException($"serving.json of '{name}': default_version '{manifest.DefaultVersion}' is not one of the versions ({string.Join(", ", versions.Keys)}).");
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var variant in manifest.Variants)
        {
            if (string.IsNullOrWhiteSpace(variant.Name) || !seen.Add(variant.Name))
            {
                throw new InvalidDataException($"serving.json of '{name}': every variant needs a unique non-empty name, got '{variant.Name}'.");
            }

            if (!AttentionSpec.KnownPatterns.Contains(variant.Pattern))
            {
                throw new InvalidDataException($"serving.json of '{name}': variant '{variant.Name}' has pattern '{variant.Pattern}', expected one of {string.Join(", ", AttentionSpec.KnownPatterns)}.");
            }

            if (!(variant.Sparsity >= 0.0 && variant.Sparsity < 1.0))
            {
                throw new InvalidDataException($"serving.json of '{name}': variant '{variant.Name}' has sparsity {variant.Sparsity.ToString(CultureInfo.InvariantCulture)}, expected a value in [0, 1).");
            }

            if (variant.Pattern == "gated" && versions.Values.Any(v => !v.Configuration.Gated))
            {
                throw new InvalidDataException($"serving.json of '{name}': variant '{variant.Name}' uses pattern 'gated', which needs a model with gated: true.");
            }

            if (variant.BlockSize is < 1)
            {
                throw new InvalidDataException($"serving.json of '{name}': variant '{variant.Name}' has block_size {variant.BlockSize}, expected at least 1.");
            }
        }

        try
        {
            Batching.BatchingInferenceExecutor.ReadOptions(manifest, name);
        }
        catch (Exception ex) when (ex is FormatException or Microsoft.Extensions.Options.OptionsValidationException)
        {
            throw new InvalidDataException(ex.Message, ex);
        }

        if (manifest.DefaultVariant is not null && !seen.Contains(manifest.DefaultVariant))
        {
            throw new InvalidDataException($"serving.json of '{name}': default_variant '{manifest.DefaultVariant}' is not one of the variants ({string.Join(", ", seen)}).");
        }
    }

    private static void ValidateName(string name, string what)
    {
        if (!ModelNames.TryValidate(name, what, out var error))
        {
            throw InferenceException.Invalid(error);
        }
    }

    private static long VersionOrder(string version) =>
        long.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : -1;

    private sealed record ModelState(string Name, ImmutableDictionary<string, ModelVersion> Versions, string? DefaultVersion, string Reason)
    {
        public static ModelState Unavailable(string name, string reason) => new(name, ImmutableDictionary<string, ModelVersion>.Empty, null, reason);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.ModelLoaded, Level = LogLevel.Information, Message = "Loaded model {Model} versions {Versions} in {ElapsedMs:F1} ms")]
        public static partial void ModelLoaded(ILogger logger, string model, string versions, double elapsedMs);

        [LoggerMessage(EventId = EventIds.ModelLoadFailed, Level = LogLevel.Warning, Message = "Model {Model} failed to load: {Reason}")]
        public static partial void ModelLoadFailed(ILogger logger, string model, string reason);

        [LoggerMessage(EventId = EventIds.ModelUnloaded, Level = LogLevel.Information, Message = "Unloaded model {Model}")]
        public static partial void ModelUnloaded(ILogger logger, string model);
    }
}
