import Foundation
import Glibc
import Presence
import Synchronization

/// A Redis Cluster of redis-server processes on 127.0.0.1, started and stopped by this process:
/// for tests, the demo and tools. Not part of the Presence client, and independent of its cluster
/// support: it drives the nodes with `redis-cli` (one node at a time, and `redis-cli --cluster`).
///
/// ``start(primaries:replicasPerPrimary:directory:extraArguments:)`` returns once the cluster is
/// settled (every node ok, all agreeing, replicas in sync). The fault tools — ``kill(port:)``,
/// ``pause(port:)``, ``resume(port:)``, ``restart(port:)``, ``reshard(slots:from:to:timeout:)`` —
/// act at once; ``waitUntilOK(timeout:)`` and ``waitForFailover(of:timeout:)`` wait for what the
/// cluster does about them. Roles change under failover, so ask for them (``primaries()``,
/// ``replica(of:)``, ``primary(ofSlot:)``) rather than remembering them.
///
/// Every node runs `redis-server --port P --bind 127.0.0.1 --cluster-enabled yes
/// --cluster-config-file <directory>/nodes-P.conf --cluster-node-timeout 1000
/// --repl-diskless-sync-delay 0 --save "" --appendonly no --dir <directory>/P` plus the extra
/// arguments: no persistence, and replicas sync at once (Redis 7 otherwise delays a first sync by
/// 5 s, and a replica that never synced is never promoted).
///
/// ``stop()`` (or the last reference going away) stops every node and removes the files.
public final class LocalRedisCluster: Sendable {
    /// Every node's port, in start order (a node keeps its port across ``restart(port:)``).
    public let ports: [Int]
    /// Where the nodes keep `nodes-P.conf` and their data directory `P/`.
    public let directory: URL
    /// `--cluster-node-timeout` (1 s unless the extra arguments set it): how long a node may not
    /// answer before the others suspect it. Failover and rejoin times follow from it.
    public let nodeTimeout: Duration
    private let ownsDirectory: Bool
    private let extraArguments: [String]
    /// The server binary every node runs (`nil`: redis-server).
    private let server: String?
    private let cli: RedisCLI
    private let state: Mutex<State>

    private struct State {
        var servers: [Int: RedisServerProcess]
        var paused: Set<Int> = []
        var seedPorts: [Int] = []
        var stopped = false
    }

    /// How often the waits ask the nodes again.
    private static let pollInterval = Duration.milliseconds(50)
    /// The bound on one question to one node (a node that does not answer is not settled).
    private static let questionTimeout = Duration.seconds(2)

    // MARK: - Start

    /// Starts `primaries × (1 + replicasPerPrimary)` redis-servers on free loopback ports (each with
    /// its bus port, P + 10000, free too; a port taken meanwhile is replaced by another), joins them
    /// with `redis-cli --cluster create … --cluster-replicas N --cluster-yes`, and waits until every
    /// node reports `cluster_state:ok`, every node knows every other (none in handshake), all agree
    /// on roles and slot owners, and every replica has `master_link_status:up` at its primary's
    /// offset. About 2 s for 3 + 3 nodes on an idle machine.
    /// - Parameters:
    ///   - primaries: at least 3 (`redis-cli --cluster create` refuses fewer).
    ///   - replicasPerPrimary: 0 or more.
    ///   - directory: where the node files go; a new temporary directory by default (removed by
    ///     ``stop()``; of a directory given here, only the node files are removed).
    ///   - extraArguments: appended to every node's command line (they win over the defaults).
    ///   - server: the server binary (a `valkey-server`, say); `nil` for redis-server found as usual.
    /// - Throws: ``RedisServerProcess/LaunchError`` when redis-server or redis-cli is missing;
    ///   ``LocalRedisClusterError`` when a node cannot start (`startFailed`), `redis-cli --cluster
    ///   create` fails (`commandFailed`, with its output), or the cluster does not settle within
    ///   60 s (`timedOut`, naming what was not yet so). Nothing started is left running.
    public static func start(
        primaries: Int = 3, replicasPerPrimary: Int = 1, directory: URL? = nil, extraArguments: [String] = [], server: String? = nil
    ) async throws -> LocalRedisCluster {
        guard primaries >= 3 else {
            throw LocalRedisClusterError(.invalidArgument, "a Redis Cluster needs at least 3 primaries (redis-cli --cluster create refuses fewer); asked for \(primaries)")
        }
        guard replicasPerPrimary >= 0 else {
            throw LocalRedisClusterError(.invalidArgument, "replicasPerPrimary must be 0 or more, not \(replicasPerPrimary)")
        }
        _ = try RedisServerProcess.executable()
        let cli = try RedisCLI()
        let ownsDirectory = directory == nil
        let directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("presence-cluster-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])

        var servers: [Int: RedisServerProcess] = [:]
        var ports: [Int] = []
        do {
            for candidate in try LoopbackPorts.clusterPorts(primaries * (1 + replicasPerPrimary)) {
                let (port, process) = try await launchNode(
                    preferring: candidate, excluding: Set(ports), directory: directory, extraArguments: extraArguments, server: server)
                ports.append(port)
                servers[port] = process
            }
        } catch {
            for server in servers.values { server.signal(SIGTERM) }
            for server in servers.values { server.stop() }
            if ownsDirectory { try? FileManager.default.removeItem(at: directory) }
            throw error
        }
        // From here the cluster's stop() (or deinit) cleans up whatever happens.
        let cluster = LocalRedisCluster(
            ports: ports, servers: servers, directory: directory, ownsDirectory: ownsDirectory, extraArguments: extraArguments, server: server, cli: cli)
        let create = try await cli.run(
            ["--cluster", "create"] + ports.map { "127.0.0.1:\($0)" } + ["--cluster-replicas", String(replicasPerPrimary), "--cluster-yes"],
            timeout: .seconds(60))
        guard create.status == 0 else {
            throw LocalRedisClusterError(.commandFailed, "redis-cli --cluster create failed (exit \(create.status)):\n\(create.text)")
        }
        try await cluster.waitUntilSettled(
            "the new cluster to settle (all nodes ok and agreeing, replicas in sync)", timeout: .seconds(60), replicasCaughtUp: true)
        let seeds = try await cluster.nodesView().filter { $0.isPrimary && !$0.slots.isEmpty }
            .sorted { $0.slots[0].lowerBound < $1.slots[0].lowerBound }.map(\.port)
        cluster.state.withLock { $0.seedPorts = seeds }
        return cluster
    }

    private init(
        ports: [Int], servers: [Int: RedisServerProcess], directory: URL, ownsDirectory: Bool, extraArguments: [String], server: String?, cli: RedisCLI
    ) {
        self.server = server
        self.ports = ports
        self.directory = directory
        self.ownsDirectory = ownsDirectory
        self.extraArguments = extraArguments
        self.cli = cli
        self.state = Mutex(State(servers: servers))
        // The last --cluster-node-timeout wins, as in redis-server itself.
        let timeoutIndex = extraArguments.lastIndex(of: "--cluster-node-timeout")
        let milliseconds = timeoutIndex.flatMap { $0 + 1 < extraArguments.count ? Int(extraArguments[$0 + 1]) : nil } ?? 1000
        self.nodeTimeout = .milliseconds(milliseconds)
    }

    /// The command line of the node on `port` (the same on every restart, so it reads its nodes.conf).
    /// A primary stops at once on SIGTERM (`shutdown-on-sigterm now`), not after waiting up to 10 s
    /// for a lagging or paused replica: ``stop()`` waits for each exit, and is called from async code.
    private static func arguments(port: Int, directory: URL, extraArguments: [String]) -> [String] {
        [
            "--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
            "--cluster-config-file", directory.appendingPathComponent("nodes-\(port).conf").path,
            "--cluster-node-timeout", "1000", "--repl-diskless-sync-delay", "0", "--shutdown-on-sigterm", "now",
            "--save", "", "--appendonly", "no", "--dir", directory.appendingPathComponent(String(port)).path,
        ] + extraArguments
    }

    /// Starts one node on `candidate`, or on another free port when that one was taken meanwhile.
    private static func launchNode(
        preferring candidate: Int, excluding: Set<Int>, directory: URL, extraArguments: [String], server: String?
    ) async throws -> (Int, RedisServerProcess) {
        var port = candidate
        var attempt = 1
        while true {
            let data = directory.appendingPathComponent(String(port))
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            do {
                return (port, try await RedisServerProcess.launch(arguments(port: port, directory: directory, extraArguments: extraArguments), server: server))
            } catch let error as RedisServerProcess.LaunchError where error.description.contains("already in use") && attempt < 5 {
                try? FileManager.default.removeItem(at: data)
                try? FileManager.default.removeItem(at: directory.appendingPathComponent("nodes-\(port).conf"))
                port = try LoopbackPorts.clusterPorts(1, excluding: excluding.union([candidate, port]))[0]
                attempt += 1
            } catch {
                throw LocalRedisClusterError(.startFailed, "cannot start the node on 127.0.0.1:\(port): \(error)")
            }
        }
    }

    // MARK: - What the cluster looks like

    /// `redis-cluster://127.0.0.1:P1,127.0.0.1:P2,…`: the primaries at start, in slot order. Any
    /// node serves as a seed, so the URL stays good after failovers.
    public var seedURL: String {
        "redis-cluster://" + state.withLock { $0.seedPorts }.map { "127.0.0.1:\($0)" }.joined(separator: ",")
    }

    /// Every node, in start order, as this process knows it (process state, not cluster roles).
    public var nodes: [Node] {
        state.withLock { state in
            ports.map { port in
                let server = state.servers[port]!
                return Node(port: port, pid: server.pid, isRunning: server.isRunning, isPaused: state.paused.contains(port))
            }
        }
    }

    /// The primaries' ports, ascending: the nodes flagged `master` and not failing in the view of
    /// the first running, unpaused node that answers. Blocks for one `redis-cli CLUSTER NODES`.
    /// - Throws: ``LocalRedisClusterError`` `noRunningNode` when no node answers.
    public func primaries() throws -> [Int] {
        try nodesViewBlocking().filter { $0.isPrimary && !$0.isFailing && $0.port != 0 }.map(\.port).sorted()
    }

    /// The port of the primary owning `slot`, as a running node sees it now. Blocks for one
    /// `redis-cli CLUSTER NODES`.
    /// - Throws: ``LocalRedisClusterError``: `invalidArgument` for a slot outside 0…16383,
    ///   `notFound` when no primary owns it, `noRunningNode` when no node answers.
    public func primary(ofSlot slot: Int) throws -> Int {
        guard (0..<ClusterHealth.slotCount).contains(slot) else {
            throw LocalRedisClusterError(.invalidArgument, "slot \(slot) is outside 0…16383")
        }
        guard let owner = try nodesViewBlocking().first(where: { $0.isPrimary && $0.owns(slot) }) else {
            throw LocalRedisClusterError(.notFound, "no primary owns slot \(slot)")
        }
        return owner.port
    }

    /// The port of a replica of the primary on `primaryPort` (the lowest, when it has several), or
    /// `nil` when it has none that is not failing. Blocks for one `redis-cli CLUSTER NODES`.
    /// - Throws: ``LocalRedisClusterError`` `unknownPort` when no node of that port is known,
    ///   `noRunningNode` when no node answers.
    public func replica(of primaryPort: Int) throws -> Int? {
        let view = try nodesViewBlocking()
        guard let primary = view.first(where: { $0.port == primaryPort }) else {
            throw LocalRedisClusterError(.unknownPort, "no node of the cluster is on 127.0.0.1:\(primaryPort)")
        }
        return view.filter { $0.isReplica && $0.primaryID == primary.id && !$0.isFailing }.map(\.port).min()
    }

    /// Every owned run of slots and its primary, ascending, as a running node sees it now. Blocks
    /// for one `redis-cli CLUSTER NODES`.
    /// - Throws: ``LocalRedisClusterError`` `noRunningNode` when no node answers.
    public func slotRanges() throws -> [SlotRange] {
        try nodesViewBlocking().filter(\.isPrimary)
            .flatMap { entry in entry.slots.map { SlotRange(slots: $0, primaryPort: entry.port) } }
            .sorted { $0.slots.lowerBound < $1.slots.lowerBound }
    }

    /// The hash slot of `key` (`RedisKeySlot`, the client's own; the tests check it against the
    /// servers' `CLUSTER KEYSLOT`).
    public static func slot(of key: String) -> Int { RedisKeySlot.slot(key) }

    /// The node's id (`CLUSTER MYID`).
    /// - Throws: ``LocalRedisClusterError`` (`unknownPort`, or the command failing).
    public func nodeID(port: Int) async throws -> String {
        try requireKnown(port)
        return try await cli.command(port: port, ["CLUSTER", "MYID"])
    }

    /// Sends one command to the node on `port` with `redis-cli -e` (no redirects followed) and
    /// returns its reply as redis-cli prints it (raw, without the trailing newline). For tests and
    /// tools that write to or inspect a particular node.
    /// - Throws: ``LocalRedisClusterError`` `commandFailed` with the error reply (`MOVED 3999
    ///   127.0.0.1:P`, `CLUSTERDOWN …`), `timedOut` after `timeout`, `unknownPort`.
    public func command(on port: Int, _ arguments: String..., timeout: Duration = .seconds(5)) async throws -> String {
        try requireKnown(port)
        return try await cli.command(port: port, arguments, timeout: timeout)
    }

    // MARK: - Faults

    /// Kills the node's redis-server with SIGKILL and reaps it (no goodbye to the cluster). Its
    /// replica is promoted after the node timeout: see ``waitForFailover(of:timeout:)``.
    /// - Throws: ``LocalRedisClusterError`` `unknownPort`.
    public func kill(port: Int) throws {
        let server = try server(port)
        server.signal(SIGKILL)
        state.withLock { _ = $0.paused.remove(port) }
    }

    /// Stops the node with SIGSTOP: its connections stay open but nothing answers, as with a hung
    /// machine. The waits and the role helpers ask only nodes that are not paused.
    /// - Throws: ``LocalRedisClusterError`` `unknownPort`.
    public func pause(port: Int) throws {
        let server = try server(port)
        if server.signal(SIGSTOP) { state.withLock { _ = $0.paused.insert(port) } }
    }

    /// Continues a node stopped by ``pause(port:)`` (SIGCONT).
    /// - Throws: ``LocalRedisClusterError`` `unknownPort`.
    public func resume(port: Int) throws {
        let server = try server(port)
        server.signal(SIGCONT)
        state.withLock { _ = $0.paused.remove(port) }
    }

    /// Starts the node again on the same port with the same directory and nodes.conf, so it
    /// rejoins with its old id (a former primary whose replica took over comes back as a replica).
    /// A node still running is stopped first (SIGTERM). Returns once it accepts connections; call
    /// ``waitUntilOK(timeout:)`` to wait until the cluster has taken it back.
    /// - Throws: ``LocalRedisClusterError`` `stopped`, `unknownPort`, or `startFailed` (the port
    ///   was taken meanwhile, redis-server failing).
    public func restart(port: Int) async throws {
        let old = try server(port)
        if old.isRunning {
            await Self.offThePool { old.stop() }
        }
        let server: RedisServerProcess
        do {
            server = try await RedisServerProcess.launch(Self.arguments(port: port, directory: directory, extraArguments: extraArguments), server: self.server)
        } catch {
            throw LocalRedisClusterError(.startFailed, "cannot restart the node on 127.0.0.1:\(port): \(error)")
        }
        let replaced = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.servers[port] = server
            state.paused.remove(port)
            return true
        }
        guard replaced else {
            server.stop()
            throw LocalRedisClusterError(.stopped, "the cluster was stopped while 127.0.0.1:\(port) restarted")
        }
    }

    /// Moves `slots` hash slots, with their keys, from the primary on `from` to the primary on
    /// `to`: `redis-cli --cluster reshard 127.0.0.1:<from> --cluster-from <id> --cluster-to <id>
    /// --cluster-slots N --cluster-yes`, on a thread of its own, so callers can keep traffic going
    /// meanwhile (their clients must follow MOVED and ASK). Returns when redis-cli finished; the primaries know
    /// the new owners then, replicas learn them by gossip a moment later (``waitUntilOK(timeout:)``
    /// waits until all agree). Not cancellable: `timeout` bounds it.
    /// - Throws: ``LocalRedisClusterError`` `commandFailed` with redis-cli's output (the cluster not
    ///   ok, a primary not reachable), `timedOut`, `unknownPort`, `invalidArgument`.
    public func reshard(slots: Int, from: Int, to: Int, timeout: Duration = .seconds(300)) async throws {
        guard slots > 0, from != to else {
            throw LocalRedisClusterError(.invalidArgument, "reshard needs a positive slot count and two different primaries (got \(slots) slots, \(from) → \(to))")
        }
        let fromID = try await nodeID(port: from)
        let toID = try await nodeID(port: to)
        let arguments = [
            "--cluster", "reshard", "127.0.0.1:\(from)", "--cluster-from", fromID, "--cluster-to", toID,
            "--cluster-slots", String(slots), "--cluster-yes",
        ]
        let output = try await cli.run(arguments, timeout: timeout)
        guard output.status == 0 else {
            throw LocalRedisClusterError(.commandFailed, "redis-cli --cluster reshard of \(slots) slots from 127.0.0.1:\(from) to 127.0.0.1:\(to) failed (exit \(output.status)):\n\(output.text)")
        }
    }

    // MARK: - Waiting for the cluster

    /// How long Redis may take to promote a replica once its primary stops answering: the node
    /// timeout until it is suspected, up to another until a majority of primaries agree it failed,
    /// up to 1 s of election delay (500 ms + a random 0–500 ms for the first-ranked replica), and
    /// the failover auth timeout, max(2 × node timeout, 2 s), twice (an election that fails is
    /// retried once that passed). 7 s at the default node timeout of 1 s; ~2.5 s seen here.
    public var failoverBound: Duration {
        let authTimeout = max(nodeTimeout * 2, .seconds(2))
        return nodeTimeout * 2 + .seconds(1) + authTimeout * 2
    }

    /// Waits until every running, unpaused node reports `cluster_state:ok`, knows every other (none
    /// in handshake, suspected or failed), all agree on roles and on every slot's owner, every slot
    /// is owned by such a node (a killed primary's slots count only once a replica took them over),
    /// and every replica has `master_link_status:up` to its primary. Polls every 50 ms.
    /// - Parameter timeout: by default twice ``failoverBound``, so it also covers a failover.
    /// - Throws: ``LocalRedisClusterError`` `timedOut`, naming what was last not so.
    public func waitUntilOK(timeout: Duration? = nil) async throws {
        try await waitUntilSettled("the cluster to be ok", timeout: timeout ?? failoverBound * 2, replicasCaughtUp: false)
    }

    /// Waits until a replica of the (killed or paused) primary on `primaryPort` has been promoted
    /// and owns its slots, and the cluster is ok as ``waitUntilOK(timeout:)`` says.
    /// - Parameter timeout: by default twice ``failoverBound``.
    /// - Returns: the promoted replica's port.
    /// - Throws: ``LocalRedisClusterError`` `timedOut`; `invalidArgument` when the node owns no
    ///   slots when called (not a primary, or its failover is over already); `unknownPort`.
    public func waitForFailover(of primaryPort: Int, timeout: Duration? = nil) async throws -> Int {
        try requireKnown(primaryPort)
        guard let old = try await nodesView().first(where: { $0.port == primaryPort }) else {
            throw LocalRedisClusterError(.unknownPort, "the running nodes do not know 127.0.0.1:\(primaryPort)")
        }
        guard let slot = old.slots.first?.lowerBound else {
            throw LocalRedisClusterError(.invalidArgument, "127.0.0.1:\(primaryPort) owns no slots: it is not a primary, or its failover is over already")
        }
        let promoted = Mutex(0)
        try await waitUntilSettled(
            "a replica of 127.0.0.1:\(primaryPort) to take over its slots and the cluster to be ok",
            timeout: timeout ?? failoverBound * 2, replicasCaughtUp: false
        ) { observations in
            guard let owner = observations.first?.nodes.first(where: { $0.isPrimary && $0.owns(slot) }), owner.port != primaryPort else {
                return "127.0.0.1:\(primaryPort) still owns slot \(slot)"
            }
            promoted.withLock { $0 = owner.port }
            return nil
        }
        return promoted.withLock { $0 }
    }

    /// Polls the running, unpaused nodes until ``ClusterHealth`` and `also` find nothing wrong.
    private func waitUntilSettled(
        _ what: String, timeout: Duration, replicasCaughtUp: Bool,
        also: ([ClusterObservation]) -> String? = { _ in nil }
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            let problem: String
            switch await observe() {
            case .success(let observations):
                guard let found = ClusterHealth.problem(observations, replicasCaughtUp: replicasCaughtUp) ?? also(observations) else { return }
                problem = found
            case .failure(let error):
                problem = error.message
            }
            guard clock.now < deadline else {
                throw LocalRedisClusterError(.timedOut, "waited \(timeout) for \(what); last seen: \(problem)")
            }
            try await Task.sleep(for: Self.pollInterval)
        }
    }

    /// `CLUSTER INFO`, `CLUSTER NODES` and `INFO replication` of every running, unpaused node,
    /// asked concurrently.
    private func observe() async -> Result<[ClusterObservation], LocalRedisClusterError> {
        let ports = askablePorts()
        guard !ports.isEmpty else { return .failure(LocalRedisClusterError(.noRunningNode, "no node is running and unpaused")) }
        let cli = self.cli
        return await withTaskGroup(of: Result<ClusterObservation, LocalRedisClusterError>.self) { group in
            for port in ports {
                group.addTask {
                    do {
                        let info = try await cli.command(port: port, ["CLUSTER", "INFO"], timeout: Self.questionTimeout)
                        let nodes = try await cli.command(port: port, ["CLUSTER", "NODES"], timeout: Self.questionTimeout)
                        let replication = try await cli.command(port: port, ["INFO", "replication"], timeout: Self.questionTimeout)
                        return .success(ClusterObservation(
                            port: port, clusterInfo: ClusterObservation.fields(info), nodes: ClusterNodesEntry.parse(nodes),
                            replication: ClusterObservation.fields(replication)))
                    } catch let error as LocalRedisClusterError {
                        return .failure(error)
                    } catch {
                        return .failure(LocalRedisClusterError(.commandFailed, "cannot ask 127.0.0.1:\(port): \(error)"))
                    }
                }
            }
            var observations: [ClusterObservation] = []
            for await result in group {
                switch result {
                case .success(let observation): observations.append(observation)
                case .failure(let error): return .failure(error)
                }
            }
            return .success(observations.sorted { $0.port < $1.port })
        }
    }

    /// `CLUSTER NODES` of the first running, unpaused node that answers.
    private func nodesView() async throws -> [ClusterNodesEntry] {
        var lastError: any Error = LocalRedisClusterError(.noRunningNode, "no node is running and unpaused")
        for port in askablePorts() {
            do {
                return ClusterNodesEntry.parse(try await cli.command(port: port, ["CLUSTER", "NODES"], timeout: Self.questionTimeout))
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// ``nodesView()``, blocking the calling thread.
    private func nodesViewBlocking() throws -> [ClusterNodesEntry] {
        var lastError: any Error = LocalRedisClusterError(.noRunningNode, "no node is running and unpaused")
        for port in askablePorts() {
            do {
                return ClusterNodesEntry.parse(try cli.command(port: port, ["CLUSTER", "NODES"], timeout: Self.questionTimeout))
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private func askablePorts() -> [Int] {
        state.withLock { state in ports.filter { state.servers[$0]!.isRunning && !state.paused.contains($0) } }
    }

    private func requireKnown(_ port: Int) throws {
        guard ports.contains(port) else {
            throw LocalRedisClusterError(.unknownPort, "127.0.0.1:\(port) is not a node of this cluster (its ports: \(ports.map(String.init).joined(separator: ", ")))")
        }
    }

    private func server(_ port: Int) throws -> RedisServerProcess {
        try requireKnown(port)
        return try state.withLock { state in
            guard !state.stopped else { throw LocalRedisClusterError(.stopped, "the cluster was stopped") }
            return state.servers[port]!
        }
    }

    /// Runs blocking `body` on a thread of its own.
    private static func offThePool(_ body: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                body()
                continuation.resume()
            }
            thread.name = "local-redis-cluster"
            thread.start()
        }
    }

    // MARK: - Stop

    /// Stops every node (SIGTERM to all, then waits for each; SIGCONT too, for a paused one) and
    /// removes the files: the whole directory when ``start(primaries:replicasPerPrimary:directory:extraArguments:)``
    /// created it, else only the node files. Idempotent; also run when the last reference goes.
    /// Blocks until the nodes exited (milliseconds; a node ignoring SIGTERM is killed after 10 s).
    public func stop() {
        let servers = state.withLock { state -> [RedisServerProcess] in
            guard !state.stopped else { return [] }
            state.stopped = true
            state.paused = []
            return Array(state.servers.values)
        }
        guard !servers.isEmpty else { return }
        // All at once: a primary shutting down waits for its replicas to catch up, unless they
        // are gone too.
        for server in servers {
            server.signal(SIGTERM)
            server.signal(SIGCONT)
        }
        for server in servers { server.stop() }
        if ownsDirectory {
            try? FileManager.default.removeItem(at: directory)
        } else {
            for port in ports {
                try? FileManager.default.removeItem(at: directory.appendingPathComponent("nodes-\(port).conf"))
                try? FileManager.default.removeItem(at: directory.appendingPathComponent(String(port)))
            }
        }
    }

    deinit {
        stop()
    }
}
