import Foundation
import Tracing

/// Settings of a ``VMManager``; every root is injectable.
public struct VMManagerConfiguration: Sendable {
    /// Where records and runtime files live.
    public var dataDirectory: DataDirectory
    /// How long a graceful stop waits for the guest before killing it.
    public var stopTimeout: Duration
    /// The size at which a VM's `console.log` is rotated.
    public var consoleLogMaximumBytes: Int
    /// How many removed VMs' final records are kept for `wait`.
    public var removedRecordsKept: Int
    /// How often records that could not be saved (a full disk) are written again.
    public var storeRetryInterval: Duration
    /// How many stats samples are kept per VM (10 minutes at the 5 s poll interval).
    public var statsHistory: Int
    /// How long a stats request waits for a second sample of a VM sampled
    /// only once, so it can answer with a CPU %.
    public var statsSecondSampleDelay: Duration
    /// The wall clock used for record timestamps.
    public var now: @Sendable () -> Date
    /// The clock that times stop timeouts, store retries, restarts and health probes.
    public var clock: any Clock<Duration>
    /// The waits between a restart policy's restarts (docs/health.md).
    public var restartBackoff: RestartBackoff = .standard

    /// Creates a configuration with the documented defaults.
    public init(
        dataDirectory: DataDirectory,
        stopTimeout: Duration = .seconds(10),
        consoleLogMaximumBytes: Int = 1 << 20,
        removedRecordsKept: Int = 256,
        storeRetryInterval: Duration = .seconds(5),
        statsHistory: Int = 120,
        statsSecondSampleDelay: Duration = .milliseconds(250),
        now: @escaping @Sendable () -> Date = { Date() },
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.dataDirectory = dataDirectory
        self.stopTimeout = stopTimeout
        self.consoleLogMaximumBytes = consoleLogMaximumBytes
        self.removedRecordsKept = removedRecordsKept
        self.storeRetryInterval = storeRetryInterval
        self.statsHistory = statsHistory
        self.statsSecondSampleDelay = statsSecondSampleDelay
        self.now = now
        self.clock = clock
    }
}

/// The backends a ``VMManager`` drives, in one value: the next ones
/// (cgroups, health probes) join it rather than the manager's `init`.
public struct VMManagerBackends: Sendable {
    /// Where records live.
    public var store: any VMStore
    /// What runs the VMs.
    public var hypervisor: any Hypervisor
    /// Where metrics go (`nil`: none).
    public var telemetry: VMTelemetry?
    /// Where lifecycle spans go.
    public var tracer: any Tracer
    /// What measures running VMs.
    public var statsSource: any StatsSource
    /// What probes guest services for health checks.
    public var healthProber: any HealthProber
    /// The local image store VMs created from a reference boot from;
    /// `nil`: the data dir's `images` folder.
    public var images: ImageService?
    /// What holds each VM to its resource quota (`unid` passes
    /// ``CgroupControllers/detect(root:vmsCPUWeight:)``'s pick).
    public var cgroups: any CgroupController

    /// Groups the backends; telemetry and tracing are off by default, stats
    /// come from `/proc`, and no cgroups are used unless a controller is given.
    public init(store: any VMStore, hypervisor: any Hypervisor, telemetry: VMTelemetry? = nil, tracer: any Tracer = NoOpTracer(),
                statsSource: any StatsSource = ProcStatsSource(), healthProber: any HealthProber = SocketHealthProber(),
                images: ImageService? = nil,
                cgroups: any CgroupController = NoCgroupController(reason: "no cgroup controller was configured")) {
        self.store = store
        self.hypervisor = hypervisor
        self.telemetry = telemetry
        self.tracer = tracer
        self.statsSource = statsSource
        self.healthProber = healthProber
        self.images = images
        self.cgroups = cgroups
    }
}
