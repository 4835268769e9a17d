/// Where and how the client connects.
public struct RedisConfiguration: Sendable, Hashable {
    /// The server's address.
    public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// A TCP host and port.
        case tcp(host: String, port: Int)
        /// A unix domain socket path.
        case unix(path: String)

        public var description: String {
            switch self {
            case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unix(let path): return "unix://\(path)"
            }
        }
    }

    /// Redis Sentinel: where the sentinels are and which primary to ask them for.
    public struct Sentinel: Sendable, Hashable {
        /// The sentinels, asked in order (the one that answers moves to the front).
        public var sentinels: [Endpoint]
        /// The monitored primary's name (`sentinel monitor NAME …`).
        public var masterName: String
        /// Password for the sentinels, when they require one.
        public var password: String?
        /// Connect and reply timeout for each sentinel (short: a dead sentinel must not stall).
        public var timeout: Duration
        /// Connect to a healthy replica instead of the primary (for reads only; see
        /// ``RedisConfiguration/requirePrimary``). Falls back to the primary when none is healthy.
        public var preferReplica: Bool = false

        /// Creates a Sentinel setting.
        public init(sentinels: [Endpoint], masterName: String, password: String? = nil, timeout: Duration = .milliseconds(500)) {
            self.sentinels = sentinels
            self.masterName = masterName
            self.password = password
            self.timeout = timeout
        }
    }

    /// Redis Cluster: the seed nodes the topology is first learned from, and where queries go.
    public struct Cluster: Sendable, Hashable {
        /// Where read-only commands go.
        public enum ReadFrom: String, Sendable, Hashable, CaseIterable {
            /// Every command goes to the primary of its slot (the default).
            case primaries
            /// Read-only commands go to a replica of their slot (`READONLY` on that connection),
            /// falling back to the primary when the shard has no reachable replica. Replica reads
            /// may lag the primary by the replication delay. Writes and scripts always go to primaries.
            /// Give writers (``PresenceNode``, ``PresenceWriter``, ``Sweeper``) a client of their own
            /// that reads from primaries: their checks read back what they just wrote.
            case replicas
        }

        /// Nodes asked for the topology (`CLUSTER SHARDS`) until one answers; any node will do.
        public var seeds: [Endpoint]
        /// Where read-only commands go.
        public var readFrom: ReadFrom
        /// How often the topology is refreshed when nothing forces it (a `MOVED` reply, a lost
        /// connection or a routing failure refresh it at once).
        public var refreshInterval: Duration
        /// Most redirects (`MOVED`, `ASK`) and retries (`TRYAGAIN`, `CLUSTERDOWN`, `LOADING`,
        /// `MASTERDOWN`, an unreachable node) one command goes through before its error is returned.
        public var maximumAttempts: Int

        /// Creates a cluster setting.
        public init(seeds: [Endpoint], readFrom: ReadFrom = .primaries, refreshInterval: Duration = .seconds(10), maximumAttempts: Int = 6) {
            self.seeds = seeds
            self.readFrom = readFrom
            self.refreshInterval = refreshInterval
            self.maximumAttempts = maximumAttempts
        }
    }

    /// When set, the client is a Redis Cluster client: commands are routed by hash slot to the
    /// node that owns it, learned from these seeds (see ``RedisClient``).
    public var cluster: Cluster?
    /// Send `READONLY` on connect (a cluster replica connection used for reads).
    var readOnly = false

    /// The server's address; with ``sentinel``, the last primary resolved (informative).
    public var endpoint: Endpoint
    /// When set, the primary is found through these sentinels on every (re)connect.
    public var sentinel: Sentinel?
    /// ACL user name for `AUTH`; `nil` for the default user.
    public var username: String?
    /// Password for `AUTH`; `nil` for none.
    public var password: String?
    /// Database index for `SELECT` (0 by default).
    public var database: Int
    /// How long connecting (including AUTH, SELECT and ROLE) may take.
    public var connectTimeout: Duration
    /// How long one read or write on the socket may block; on expiry the connection is dropped
    /// and its commands fail with ``RedisError/Code/timeout``.
    public var commandTimeout: Duration
    /// Refuse a server that is not a primary (``RedisError/Code/replica``). On by default: writes
    /// sent to a replica are refused or silently lost at its next resync.
    public var requirePrimary: Bool
    /// First wait before reconnecting after a failed attempt; doubles up to ``maximumBackoff``.
    public var minimumBackoff: Duration
    /// Longest wait between reconnect attempts.
    public var maximumBackoff: Duration
    /// Most commands written in one pipeline before replies are read.
    public var maximumPipelineLength: Int
    /// `CLIENT SETNAME` value, visible in `CLIENT LIST`.
    public var clientName: String

    /// Creates a configuration.
    public init(
        endpoint: Endpoint,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(2),
        requirePrimary: Bool = true,
        minimumBackoff: Duration = .milliseconds(50),
        maximumBackoff: Duration = .seconds(2),
        maximumPipelineLength: Int = 4096,
        clientName: String = "presence",
        sentinel: Sentinel? = nil,
        cluster: Cluster? = nil
    ) {
        self.cluster = cluster
        self.endpoint = endpoint
        self.sentinel = sentinel
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.requirePrimary = requirePrimary
        self.minimumBackoff = minimumBackoff
        self.maximumBackoff = maximumBackoff
        self.maximumPipelineLength = maximumPipelineLength
        self.clientName = clientName
    }
}
