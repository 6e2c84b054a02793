namespace SparseInference.Serving;

/// <summary>
/// Every <c>[LoggerMessage]</c> event id of the service (this library and its host) in one place, so that no two
/// messages share one and an operator can filter on an id that keeps its meaning. Ids are grouped in ranges by area; a
/// new message takes the next free id of its area's range (a new area takes a new range, listed here), and its
/// attribute names the constant: <c>[LoggerMessage(EventId = EventIds.Ready, ...)]</c>. A test checks that every
/// logging method of the service uses an id from this list and that no id is used twice. Published ids never change.
/// </summary>
public static class EventIds
{
    // 1-39: start-up and shutdown (Serving/Hosting/ServerLifecycle).
    public const int LoadingRepository = 1;
    public const int Ready = 2;
    public const int Draining = 3;
    public const int MemoryBudget = 4;

    // 40-59: the compute device and loading onto it (Serving/Hosting/ConfiguredBackend, Serving/Repository/EngineModelLoader).
    public const int ComputeDeviceCpu = 40;
    public const int ComputeDeviceOpened = 41;
    public const int ComputeDeviceUnavailable = 42;
    public const int LoadedOnDevice = 43;
    public const int PatternOnCpu = 44;

    // 60-99: health (Serving/Health).
    public const int DeviceFault = 60;
    public const int PersistentDeviceFault = 61;
    public const int UnhandledFault = 62;

    // 100-199: the model repository (Serving/Repository).
    public const int ModelLoaded = 100;
    public const int ModelLoadFailed = 101;
    public const int ModelUnloaded = 102;

    // 300-399: the host's gRPC service (Server/Grpc).
    public const int GrpcCallFailed = 300;
    public const int GrpcCallEndedEarly = 302;

    // 400-499: composing models with batching and variants (Serving/Batching/BatchingInferenceExecutor, Serving/Hosting/RepositoryVariants).
    public const int BatcherCreated = 420;
    public const int VariantsRegistered = 430;
    public const int VariantBuildFailed = 431;

    // 3000-3099: the dynamic batcher (Serving/Batching).
    public const int BatchFailedRetryingSingly = 3001;
    public const int RequestFailedAlone = 3002;
    public const int SchedulerFault = 3003;

    // 3100-3199: the variant registry (Serving/Variants).
    public const int RoutingTableSwapped = 3100;
    public const int VariantBuildRefused = 3101;
    public const int LoadingVariantWeights = 3102;
    public const int SplitRolledBack = 3103;
    public const int RolloutApplyFailed = 3104;

    // 3200-3299: guardrails (Serving/Variants/Guardrails).
    public const int GuardrailTripped = 3200;

    // 3300-3399: shadow comparison (Serving/Variants/Comparison).
    public const int ShadowForwardFailed = 3300;

    // 3400-3499: rollout convergence (Serving/Variants/Rollout).
    public const int RolloutRoundFailed = 3400;

    // 3500-3599: the shared state store (Serving/State).
    public const int StateDocumentWritten = 3500;
    public const int StateWatchUnavailable = 3501;

    // 3600-3699: per-line baselines (Serving/Baselines).
    public const int BaselineStored = 3600;
    public const int BaselineRemoved = 3601;
    public const int BaselineUnreadable = 3602;
    public const int BaselinesChanged = 3603;
    public const int OnboardingRowsNotKept = 3604;
    public const int BaselineRoundFailed = 3605;
}
