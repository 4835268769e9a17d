import Foundation
import Logging
import Presence
import ServiceLifecycle

/// Many nodes with continuous churn (connects, disconnects, sockets moving between nodes) against
/// one Redis, then a check that the registry equals the union of the nodes' local truth exactly.
/// Arguments: REDIS_URL [SECONDS=180] [NODES=50] [SOCKETS_PER_NODE=2000] [EVENTS_PER_SECOND=10000].
func soak(_ arguments: BenchArguments) async throws {
    let redis = try arguments.redis()
    let seconds = arguments.int(1, 180)
    let nodeCount = arguments.int(2, 50)
    let perNode = arguments.int(3, 2000)
    let eventsPerSecond = arguments.int(4, 10_000)
    let logger = benchLogger("soak")
    let configuration = benchConfiguration()
    let clients = (0..<nodeCount).map { _ in RedisClient(configuration: redis, scripts: PresenceScripts.all, logger: logger) }
    let reader = RedisClient(configuration: redis, scripts: PresenceScripts.all, logger: logger)
    let nodes = try (0..<nodeCount).map { try PresenceNode(nodeID: "soak-\($0)", client: clients[$0], configuration: configuration, logger: logger) }
    let registry = PresenceRegistry(client: reader, configuration: configuration)

    try await withThrowingTaskGroup(of: Void.self) { group in
        for client in clients + [reader] { group.addTask { try await client.run() } }
        _ = try await reader.send("FLUSHALL")
        for node in nodes { group.addTask { try await node.run() } }

        // Local truth, mirrored: what each node was told.
        var truth = [[String: String?]](repeating: [:], count: nodeCount)
        var next = 0
        func newSocket(_ node: Int) throws {
            let id = "s\(next)-\(UInt32.random(in: 0 ... .max))"
            let user: String? = next % 3 == 0 ? nil : "user-\(next % 20_000)"
            next += 1
            try nodes[node].connected(socketID: id, userID: user)
            truth[node][id] = user
        }
        for node in 0..<nodeCount { for _ in 0..<perNode { try newSocket(node) } }
        for node in nodes { try await node.flush() }
        let memoryAtStart = try await reader.usedMemory()
        say("loaded \(nodeCount) nodes × \(perNode) sockets; used_memory \(memoryAtStart) bytes")

        let clock = ContinuousClock()
        let start = clock.now
        var events = 0
        var errors = 0
        var lastReport = start
        let tick = Duration.milliseconds(100)
        let perTick = max(3, eventsPerSecond / 10)
        while clock.now - start < .seconds(seconds) {
            let tickStart = clock.now
            for _ in 0..<(perTick / 3) {
                let node = Int.random(in: 0..<nodeCount)
                // A disconnect and a connect on one node…
                if let victim = truth[node].keys.randomElement() {
                    try nodes[node].disconnected(socketID: victim)
                    truth[node][victim] = nil
                }
                try newSocket(node)
                // …and a socket moving to another node (a reconnect race: the connect lands first).
                let other = (node + Int.random(in: 1..<nodeCount)) % nodeCount
                if let moving = truth[node].keys.randomElement(), let user = truth[node][moving] {
                    try nodes[other].connected(socketID: moving, userID: user)
                    truth[other][moving] = user
                    try nodes[node].disconnected(socketID: moving)
                    truth[node][moving] = nil
                }
                events += 3
            }
            if clock.now - lastReport >= .seconds(10) {
                lastReport = clock.now
                for node in nodes {
                    do { try await node.flush() } catch { errors += 1 }
                }
                let memory = try await reader.usedMemory()
                say(String(format: "t=%3ds events=%d errors=%d sockets=%d used_memory=%d", Int((clock.now - start) / .seconds(1)), events, errors, truth.reduce(0) { $0 + $1.count }, memory))
            }
            let spent = clock.now - tickStart
            if spent < tick { try await Task.sleep(for: tick - spent) }
        }
        for node in nodes {
            do { try await node.flush() } catch { errors += 1 }
        }
        let memoryAtEnd = try await reader.usedMemory()

        // The registry must equal the union of local truth: every local socket alive on its node,
        // every node's set exactly its local sockets, and no other socket record.
        var missing = 0
        var misplaced = 0
        var ghosts = 0
        for (index, local) in truth.enumerated() {
            let ids = Array(local.keys)
            for chunk in stride(from: 0, to: ids.count, by: 1000) {
                let slice = Array(ids[chunk..<min(chunk + 1000, ids.count)])
                for (id, socket) in zip(slice, try await registry.sockets(slice)) {
                    if socket == nil { missing += 1 } else if socket?.nodeID != "soak-\(index)" || socket?.userID != local[id] ?? nil { misplaced += 1 }
                }
            }
            var cursor: String?
            var listed = Set<String>()
            repeat {
                let page = try await registry.sockets(onNode: "soak-\(index)", cursor: cursor, limit: 1000)
                listed.formUnion(page.sockets.map(\.socketID))
                cursor = page.nextCursor
            } while cursor != nil
            ghosts += listed.subtracting(local.keys).count
        }
        var records = 0
        for primary in try await reader.primaryClients() {
            var cursor = "0"
            repeat {
                let page = try await primary.send("SCAN", cursor, "MATCH", "presence:r:*", "COUNT", "1000").array ?? []
                cursor = page.first?.string ?? "0"
                // A record holds U+001F; a tombstone written over one (changes on) never does.
                let keys = page.last?.array?.compactMap(\.string) ?? []
                for reply in await primary.pipeline(keys.map { RedisCommand("GET", $0) }) {
                    if (try reply.get().string)?.contains("\u{1F}") == true { records += 1 }
                }
            } while cursor != "0"
        }
        let total = truth.reduce(0) { $0 + $1.count }
        ghosts += max(0, records - total)
        say("duration \(seconds) s, \(events) events (\(events / max(seconds, 1))/s), errors \(errors + clients.reduce(0) { $0 + $1.metrics.errorCount })")
        say("local sockets \(total), socket records \(records), missing \(missing), misplaced \(misplaced), ghosts \(ghosts): mismatch \(missing + misplaced + ghosts)")
        say("used_memory at start \(memoryAtStart) bytes, at end \(memoryAtEnd) bytes (\(String(format: "%+.1f", Double(memoryAtEnd - memoryAtStart) * 100 / Double(max(memoryAtStart, 1))))%)")
        group.cancelAll()
        if missing + misplaced + ghosts > 0 || errors > 0 { throw SoakFailure() }
    }
}

struct SoakFailure: Error, CustomStringConvertible {
    var description: String { "the soak found mismatches or errors" }
}
