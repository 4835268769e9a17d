import Foundation
import Logging
import Presence

/// Fleet recovery: NODES PresenceNodes hold SOCKETS_PER_NODE sockets each against a redis-server
/// this mode runs itself; then that server is SIGKILLed and started again empty on the same port
/// (a crash without persistence), and the mode reports how the fleet restores the registry:
/// - the time from the new server's first `PONG` until every key is back (the node sets hold every
///   socket and `DBSIZE` equals the count before the crash), in heartbeat intervals;
/// - a lookup's latency meanwhile (`PresenceRegistry.socket`, one every 10 ms from another client):
///   median, p99 and peak, and the same before the crash;
/// - the commands Redis processed until then (top level, and with scripts' inner calls).
/// It ends with the exactness check of the soak: every socket alive on its node, no ghost.
///
/// Arguments: PORT DATA_DIR [NODES=200] [SOCKETS_PER_NODE=5000] [HEARTBEAT_MS=2000].
func recoveryBenchmark(_ arguments: [String]) async throws {
    guard arguments.count >= 2, let port = Int(arguments[0]) else { throw RecoveryFailure("usage: recovery PORT DATA_DIR [NODES] [SOCKETS_PER_NODE] [HEARTBEAT_MS]") }
    let directory = arguments[1]
    let rest = BenchArguments(Array(arguments.dropFirst()))
    let nodeCount = rest.int(1, 200)
    let perNode = rest.int(2, 5000)
    let heartbeat = Duration.milliseconds(rest.int(3, 2000))
    let configuration = benchConfiguration(PresenceConfiguration(heartbeatInterval: heartbeat, nodeTTL: heartbeat * 3))
    try configuration.validate()
    let redis = try RedisConfiguration(url: "redis://127.0.0.1:\(port)")
    var logger = benchLogger("recovery")
    logger.logLevel = .error  // every node logs the outage; the figures are what matters here

    var server = try BenchRedisServer.start(port: port, directory: directory)
    defer { server.kill() }
    let probe = RedisClient(configuration: redis, scripts: PresenceScripts.all, logger: logger)
    let clients = (0..<nodeCount).map { _ in RedisClient(configuration: redis, scripts: PresenceScripts.all, logger: logger) }
    let nodes = try (0..<nodeCount).map {
        try PresenceNode(nodeID: "fleet-\($0)", client: clients[$0], configuration: configuration, logger: logger)
    }
    let registry = PresenceRegistry(client: probe, configuration: configuration)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for client in clients + [probe] { group.addTask { try await client.run() } }
        while (try? await probe.send("PING")) == nil { try await Task.sleep(for: .milliseconds(5)) }
        for node in nodes { group.addTask { try await node.run() } }
        var owner: [String: String] = [:]
        owner.reserveCapacity(nodeCount * perNode)
        // Node by node, as a fleet fills up: the load itself is not what is measured.
        for (index, node) in nodes.enumerated() {
            for socket in 0..<perNode {
                let id = "f\(index)-\(socket)-\(randomID(8))"
                try node.connected(socketID: id, userID: socket % 3 == 0 ? nil : "user-\(index)-\(socket % 1000)")
                owner[id] = node.nodeID
            }
            // A flush fails when a call timed out on this loaded machine; the node retries by itself.
            while (try? await node.flush()) == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let keys = try await probe.send("DBSIZE").int ?? 0
        let sample = Array(owner.keys.prefix(1000))
        let quiet = try await lookupLatencies(registry, sample, for: heartbeat * 2)
        say("loaded \(owner.count) sockets on \(nodeCount) nodes (heartbeat \(heartbeat)): \(keys) keys; lookup latency before the crash: \(quiet.summary)")

        server.kill()
        server = try BenchRedisServer.start(port: port, directory: directory)
        let clock = ContinuousClock()
        while (try? await probe.send("PING")) == nil { try await Task.sleep(for: .milliseconds(5)) }
        let start = clock.now
        say("redis-server SIGKILLed and started again empty; measuring recovery")

        let cpuAtStart = server.cpuSeconds()
        let pinger = try RedisCLILatency.start(port: port)
        let watch = LatencyWatch()
        let watcher = Task { try await watch.run(registry, sample) }
        let sets = nodes.map { RedisCommand("SCARD", "presence:{\($0.nodeID)}:sockets") }
        var restoredAt: ContinuousClock.Instant?
        while clock.now - start < heartbeat * 20 {
            let cards = await probe.pipeline(sets + [RedisCommand("DBSIZE")])
            let indexed = cards.dropLast().reduce(0) { $0 + ((try? $1.get().int) ?? 0) }
            let size = (try? cards.last?.get().int) ?? 0
            if indexed == owner.count && size == keys { restoredAt = clock.now; break }
            try await Task.sleep(for: .milliseconds(20))
        }
        watcher.cancel()
        let cpu = server.cpuSeconds() - cpuAtStart
        let pings = pinger.stop()
        let during = await watch.latencies()
        let info = try await probe.send("INFO", "stats").string ?? ""
        let processed = info.split(separator: "\r\n").first { $0.hasPrefix("total_commands_processed:") }
            .flatMap { Int($0.dropFirst("total_commands_processed:".count)) } ?? 0
        let executed = try await probe.executedCommands()
        guard let restoredAt else {
            throw RecoveryFailure("the registry was not complete \(heartbeat * 20) after the restart")
        }
        let elapsed = restoredAt - start
        say(String(format: "restored %d keys (%d sockets) in %.2f s = %.2f heartbeat intervals", keys, owner.count, elapsed.seconds, elapsed / heartbeat))
        say("lookup latency during recovery (in this process, beside the 200 nodes): \(during.summary)")
        say("redis-cli --latency from another process during recovery: \(pings.summary)")
        say(String(format: "redis-server CPU until complete: %.2f s of %.2f s (%.0f %% of one core; 100 %% means Redis was the bound)", cpu, elapsed.seconds, cpu / elapsed.seconds * 100))
        say("commands processed until complete: \(processed) top level, \(executed) with scripts' inner calls (\(String(format: "%.2f", Double(executed) / Double(owner.count))) per socket)")
        result("recovery_seconds", elapsed.seconds)
        result("recovery_intervals", elapsed / heartbeat)
        result("recovery_redis_cpu_share", cpu / elapsed.seconds)
        result("recovery_lookup_p99_ms", during.p99)
        result("recovery_ping_max_ms", pings.max)
        result("recovery_ping_avg_ms", pings.average)
        result("recovery_lookup_peak_ms", during.peak)
        result("recovery_commands_top", Double(processed))
        result("recovery_commands_executed", Double(executed))

        var wrong = 0
        let ids = Array(owner.keys)
        for chunk in stride(from: 0, to: ids.count, by: PresenceRegistry.maximumBatch) {
            let slice = Array(ids[chunk..<min(chunk + PresenceRegistry.maximumBatch, ids.count)])
            for (id, socket) in zip(slice, try await registry.sockets(slice)) where socket?.nodeID != owner[id] { wrong += 1 }
        }
        say("sockets not alive on their node after recovery: \(wrong)")
        group.cancelAll()
        if wrong > 0 { throw RecoveryFailure("\(wrong) sockets were not restored") }
    }
}

/// Lookup latencies, milliseconds.
struct Latencies {
    var samples: [Double]
    var median: Double { percentile(0.5) }
    var p99: Double { percentile(0.99) }
    var peak: Double { samples.max() ?? 0 }
    func percentile(_ p: Double) -> Double {
        if samples.isEmpty { return 0 }
        let sorted = samples.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }
    var summary: String {
        String(format: "median %.2f ms, p99 %.2f ms, peak %.2f ms over %d lookups", median, p99, peak, samples.count)
    }
}

/// Looks sockets up one at a time, every 10 ms, recording each latency.
actor LatencyWatch {
    private var samples: [Double] = []
    func record(_ milliseconds: Double) { samples.append(milliseconds) }
    func latencies() -> Latencies { Latencies(samples: samples) }
    func run(_ registry: PresenceRegistry, _ ids: [String]) async throws {
        let clock = ContinuousClock()
        while !Task.isCancelled {
            let start = clock.now
            _ = try? await registry.socket(ids.randomElement()!)
            record((clock.now - start).seconds * 1000)
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

func lookupLatencies(_ registry: PresenceRegistry, _ ids: [String], for duration: Duration) async throws -> Latencies {
    let watch = LatencyWatch()
    let task = Task { try await watch.run(registry, ids) }
    try await Task.sleep(for: duration)
    task.cancel()
    return await watch.latencies()
}

/// `redis-cli --latency --raw` in a process of its own: a `PING` every 10 ms until SIGINT, then
/// `min max avg samples` in milliseconds.
struct RedisCLILatency {
    let process: Process
    let output: Pipe

    static func start(port: Int) throws -> RedisCLILatency {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["redis-cli", "-p", String(port), "--latency", "--raw"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        return RedisCLILatency(process: process, output: output)
    }

    struct Figures {
        var max = 0.0, average = 0.0, samples = 0
        var summary: String { String(format: "PING average %.2f ms, max %.2f ms over %d samples", average, max, samples) }
    }

    func stop() -> Figures {
        process.interrupt()
        process.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let fields = text.split(whereSeparator: \.isWhitespace).compactMap { Double($0) }
        guard fields.count >= 4 else { return Figures() }
        return Figures(max: fields[1], average: fields[2], samples: Int(fields[3]))
    }
}

/// A redis-server the recovery mode starts, kills and starts again on the same port.
struct BenchRedisServer {
    let process: Process

    static func start(port: Int, directory: String) throws -> BenchRedisServer {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", directory, "--logfile", directory + "/redis.log", "--maxclients", "10000"]
        try process.run()
        return BenchRedisServer(process: process)
    }

    /// CPU time (user + system) the server has used, from `/proc/PID/stat`.
    func cpuSeconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, utime 14 and stime 15 (1-based, man proc).
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// SIGKILL, then reaps the process (once: a second call finds it reaped and does nothing).
    func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

struct RecoveryFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
