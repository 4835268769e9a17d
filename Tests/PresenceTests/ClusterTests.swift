import Foundation
import Glibc
import Synchronization
@testable import Presence
import PresenceEmbedded
import PresenceTestSupport
import Testing

/// Timings for the cluster tests: the node TTL outlasts a failover (node timeout 1 s, promotion
/// about 3 s here) many times over, so that nodes stay alive while their heartbeats cannot land.
private let clusterConfiguration = PresenceConfiguration(
    heartbeatInterval: .milliseconds(500), nodeTTL: .seconds(30), socketTTL: .seconds(120), nodeRetention: .seconds(60))

@Suite("Redis Cluster: failover, live reshard, partial availability, keys on every primary")
struct ClusterTests {
    /// `count` sockets on each of `nodes` nodes, users on, flushed: the expected registry.
    private func populate(_ nodes: [RunningNode], count: Int) async throws -> [String: String] {
        var expected: [String: String] = [:]  // socket → node
        for running in nodes {
            let id = running.node.nodeID
            for i in 0..<count {
                try running.node.connected(socketID: "\(id)-s\(i)", userID: "user\(i % 97)")
                expected["\(id)-s\(i)"] = id
            }
            try await running.node.flush()
        }
        return expected
    }

    /// Whether every socket of `expected` reads alive on its node, right now.
    private func complete(_ registry: PresenceRegistry, _ expected: [String: String]) async throws -> Bool {
        let ids = Array(expected.keys)
        for chunk in ids.chunked(1000) {
            let sockets = try await registry.sockets(Array(chunk))
            for (id, socket) in zip(chunk, sockets) where socket?.nodeID != expected[id] { return false }
        }
        return true
    }

    @Test("keys spread over every primary; the sweeper works on each of them")
    func keysOnEveryPrimary() async throws {
        try await withLocalCluster(replicasPerPrimary: 0) { cluster in
            try await withClient(try RedisConfiguration(url: cluster.seedURL)) { client in
                let configuration = PresenceConfiguration(heartbeatInterval: .milliseconds(200), nodeTTL: .seconds(2), socketTTL: .seconds(60), nodeRetention: .seconds(60))
                let registry = PresenceRegistry(client: client, configuration: configuration)
                let keep = try await startNode("keeper", client: client, configuration: configuration)
                let doomed = try await startNode("doomed", client: client, configuration: configuration)
                let expected = try await populate([keep, doomed], count: 600)
                let primaries = try await client.primaryClients()
                #expect(primaries.count == 3)
                for primary in primaries {
                    #expect(try await primary.send("DBSIZE").int ?? 0 > 100, "\(primary.configuration.endpoint) holds few keys")
                }
                #expect(try await complete(registry, expected))

                await doomed.crash()
                let info = try #require(try await registry.node("doomed"))
                try await waitUntilRedisTime(client, passes: Int(info.expiresAt.timeIntervalSince1970 * 1000))
                let report = try await Sweeper(client: client, configuration: configuration).sweep()
                #expect(report.nodes.map(\.nodeID) == ["doomed"])
                #expect(report.sockets == 600)
                let left = try await allKeys(client)
                #expect(!left.contains { $0.contains("doomed") })
                #expect(try await registry.sockets(ofUser: "user1").allSatisfy { $0.nodeID == "keeper" })
                #expect(try await complete(registry, expected.filter { $0.value == "keeper" }))
                try await keep.stop()
            }
        }
    }

    @Test("SIGKILL of the registry's primary: its replica takes over, queries answer right or 503 meanwhile, the registry is complete within two heartbeats of ok")
    func primaryFailover() async throws {
        try await withLocalCluster(replicasPerPrimary: 1) { cluster in
            try await withClient(try RedisConfiguration(url: cluster.seedURL)) { client in
                let registry = PresenceRegistry(client: client, configuration: clusterConfiguration)
                var nodes: [RunningNode] = []
                for n in 0..<3 { nodes.append(try await startNode("fo-\(n)", client: client, configuration: clusterConfiguration)) }
                let expected = try await populate(nodes, count: 1_000)
                #expect(try await complete(registry, expected))
                // Every replica has every write before the kill: what is lost then is only availability.
                for primary in try await client.primaryClients() {
                    _ = try await primary.send("WAIT", "1", "5000")
                }
                let victim = try cluster.primary(ofSlot: RedisKeySlot.slot(clusterConfiguration.keys.nodeTable))

                // Readers meanwhile: an answer is right, or a RedisError (the API's 503); never a wrong
                // "not alive", never another error.
                let sample = Array(expected.keys.sorted().prefix(300))
                let stop = StopFlag()
                let reader = Task { () -> (right: Int, unavailable: Int, wrong: [String], other: [String]) in
                    var tally = (right: 0, unavailable: 0, wrong: [String](), other: [String]())
                    while !stop.isSet {
                        do {
                            let sockets = try await registry.sockets(sample)
                            for (id, socket) in zip(sample, sockets) where socket?.nodeID != expected[id] { tally.wrong.append(id) }
                            tally.right += 1
                        } catch is RedisError {
                            tally.unavailable += 1
                        } catch {
                            tally.other.append("\(error)")
                        }
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                    return tally
                }
                try cluster.kill(port: victim)
                let promoted = try await cluster.waitForFailover(of: victim)
                let ok = ContinuousClock.now
                #expect(promoted != victim)
                let (settled, slack) = try await measuringSchedulingSlack {
                    try await eventually("every socket alive on its node again") { try await complete(registry, expected) }
                }
                stop.set()
                let tally = await reader.value
                let back = ContinuousClock.now - ok
                print("failover: \(tally.right) right answers, \(tally.unavailable) unavailable, complete \(settled) after ok (slack \(slack))")
                #expect(tally.wrong.isEmpty, "wrong answers for \(tally.wrong.prefix(5))")
                #expect(tally.other.isEmpty, "\(tally.other.prefix(3))")
                // (Right answers before the kill and after the promotion depend on timing; the registry was
                // read complete just above.)
                #expect(tally.right + tally.unavailable > 0, "the reader never ran")
                #expect(back <= clusterConfiguration.heartbeatInterval * 2 + slack * 2 + .seconds(1))
                for running in nodes { try await running.stop() }
            }
        }
    }

    @Test("a failover that loses acknowledged writes: the nodes write again what lived in the failed-over slots, complete within two heartbeats of the failover being seen")
    func failoverLosingWrites() async throws {
        try await withLocalCluster(replicasPerPrimary: 1) { cluster in
            try await withClient(try RedisConfiguration(url: cluster.seedURL)) { client in
                let registry = PresenceRegistry(client: client, configuration: clusterConfiguration)
                let running = try await startNode("lossy", client: client, configuration: clusterConfiguration)
                var expected = try await populate([running], count: 500)
                let doomed = (0..<600).map { "gone-\($0)" }
                for id in doomed { try running.node.connected(socketID: id, userID: "guser\(id.count % 7)") }
                try await running.node.flush()
                for primary in try await client.primaryClients() { _ = try await primary.send("WAIT", "1", "5000") }
                let keys = clusterConfiguration.keys
                let registryPrimary = try cluster.primary(ofSlot: RedisKeySlot.slot(keys.nodeTable))
                let victim = try #require(try cluster.primaries().first { $0 != registryPrimary })
                let replica = try #require(try cluster.replica(of: victim))

                // The replica stops, and the victim drops its link (what was already sent sits in the
                // replica's socket buffer; nothing after reaches it): the victim alone holds what follows.
                try cluster.pause(port: replica)
                _ = try await cluster.command(on: victim, "CLIENT", "KILL", "TYPE", "replica")
                for i in 0..<1_000 {
                    try running.node.connected(socketID: "late-\(i)", userID: "luser\(i % 31)")
                    expected["late-\(i)"] = "lossy"
                }
                for id in doomed { _ = try running.node.disconnected(socketID: id) }
                try await running.node.flush()
                #expect(try await registry.sockets(doomed).allSatisfy { $0 == nil })
                let owner = try slotOwners(cluster)
                let onVictim = expected.keys.filter { owner(RedisKeySlot.slot(keys.socket($0))) == victim && $0.hasPrefix("late-") }
                #expect(!onVictim.isEmpty)
                // Started now: its start (a registration) would otherwise count in the repair's time.
                let probe = try await startNode("probe", client: client, configuration: clusterConfiguration)
                try cluster.kill(port: victim)
                try cluster.resume(port: replica)
                let promoted = try await cluster.waitForFailover(of: victim)
                #expect(promoted == replica)
                // What the replica never received is gone from the cluster now.
                // (Read as soon as the client's map shows the promotion: until then they answer unavailable.)
                var missing = 0
                var resurrected = 0
                try await eventually("a first answer after the promotion") {
                    missing = try await registry.sockets(Array(onVictim.prefix(1000))).filter { $0 == nil }.count
                    // …and what it deleted alone is back (unless already deleted again).
                    resurrected = try await registry.sockets(doomed).filter { $0 != nil }.count
                    return true
                }
                // The client sees the failover once a command meets the dead node or a refresh runs.
                _ = try await eventually("the client to see the failover") {
                    _ = try? await registry.sockets(Array(onVictim.prefix(50)))
                    return client.failovers.generation > 0
                }
                let seen = ContinuousClock.now
                let failedBefore = running.node.failedBatches
                // The longest round trip of a write while the repair runs, from a probe node's batches.
                let (roundTrip, slack) = try await measuringSchedulingSlack { () -> Duration in
                    var longest = Duration.zero
                    var i = 0
                    while (try? await complete(registry, expected)) != true {
                        let start = ContinuousClock.now
                        try probe.node.connected(socketID: "probe-\(i)")
                        // A failed write (a node's view lagging the promotion) has no round trip to count.
                        if (try? await probe.node.flush()) != nil { longest = max(longest, ContinuousClock.now - start) }
                        i += 1
                        try await Task.sleep(for: .milliseconds(20))
                    }
                    return longest
                }
                let back = ContinuousClock.now - seen
                print("lost writes: \(missing) of \(onVictim.count) sockets on the failed primary were missing after the failover, \(resurrected) deleted ones back; complete \(back) after the client saw it (slack \(slack), write round trip up to \(roundTrip), \(running.node.failedBatches - failedBefore) failed batches)")
                #expect(missing > 0, "the failover lost nothing: the repair was not exercised")
                // (The replica had every doomed record and missed their deletions, so those on the
                // victim's slots came back with the promotion; `resurrected` shows how many were still
                // back when looked at, which the repair may already have undone.)
                _ = try await eventually("every socket the node let go dead again") { try await registry.sockets(doomed).allSatisfy { $0 == nil } }
                for id in doomed { #expect(!(try await hasRecord(client, keys.socket(id))), "\(id) still has a record") }
                // Started as soon as the client records the failover (or at the next heartbeat, one
                // interval, when the listener runs late), after up to a quarter interval, spread over
                // half: within 1.75 intervals, plus the timers' lateness and the rewrite's batches
                // (16, 32, 64, … 256 sockets: eight for these 1,500), each taking the round trip
                // measured and, past the latency target (5 ms at this heartbeat), the pause the
                // pacing adds: rtt × (rtt / target − 1).
                // A batch that failed meanwhile (the promotion not yet everywhere) went again after
                // its pause: 50 ms doubling per consecutive failure, at most an interval, each.
                let target = Duration.milliseconds(5)
                let batch = roundTrip + roundTrip * max(0, roundTrip / target - 1)
                let failures = running.node.failedBatches - failedBefore
                let pauses = (0..<failures).reduce(Duration.zero) { sum, k in
                    sum + min(clusterConfiguration.heartbeatInterval, .milliseconds(50) * (1 << min(k, 10))) + batch
                }
                #expect(back <= clusterConfiguration.heartbeatInterval * 7 / 4 + slack * 2 + batch * 8 + pauses, "\(failures) failed batches")
                await probe.crash()
                #expect(try await registry.sockets(ofUser: "luser1").count == expected.keys.filter { $0.hasPrefix("late-") && Int($0.dropFirst(5))! % 31 == 1 }.count + 0)
                try await running.stop()
            }
        }
    }

    @Test("--read-from replicas: lookups read replicas (READONLY), writes and scripts go to primaries; a dead replica's reads fall back to its primary")
    func readFromReplicas() async throws {
        try await withLocalCluster(replicasPerPrimary: 1) { cluster in
            var reads = try RedisConfiguration(url: cluster.seedURL + "?read-from=replicas")
            reads.connectTimeout = .milliseconds(300)
            try await withClient(try RedisConfiguration(url: cluster.seedURL)) { writes in
                try await withClient(reads) { client in
                    let registry = PresenceRegistry(client: client, configuration: clusterConfiguration)
                    let running = try await startNode("rr", client: writes, configuration: clusterConfiguration)
                    let expected = try await populate([running], count: 600)
                    for primary in try await writes.primaryClients() { _ = try await primary.send("WAIT", "1", "5000") }
                    func getCalls(_ port: Int) async throws -> Int {
                        let info = try await cluster.command(on: port, "INFO", "commandstats")
                        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_get:") }),
                              let range = line.range(of: "calls=") else { return 0 }
                        return Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0
                    }
                    let primaries = try cluster.primaries()
                    let replicas = try primaries.map { try #require(try cluster.replica(of: $0)) }
                    let before = try await (primaries + replicas).asyncMap(getCalls)
                    #expect(try await complete(registry, expected))
                    let after = try await (primaries + replicas).asyncMap(getCalls)
                    let delta = zip(after, before).map { $0 - $1 }
                    print("read-from replicas: GET calls per node \(delta), redirects \(client.metrics.redirectCount)")
                    // A replica slow to answer on a loaded machine sends that read to its primary: a few
                    // may land there, the rest on the replicas.
                    let onPrimaries = delta.prefix(primaries.count).reduce(0, +)
                    #expect(onPrimaries * 10 <= expected.count, "primaries answered reads: \(delta)")
                    #expect(delta.suffix(replicas.count).reduce(0, +) >= expected.count - onPrimaries)
                    // A write through the replica-reading client still lands on a primary.
                    #expect(try await client.send("SET", "rr-written", "1").string == "OK")
                    #expect(try await writes.send("GET", "rr-written").string == "1")

                    try cluster.kill(port: replicas[0])
                    #expect(try await complete(registry, expected), "reads of the dead replica's shard did not fall back to its primary")
                    try await running.stop()
                }
            }
        }
    }

    @Test("scripts flushed on every primary are loaded again per primary (NOSCRIPT); a call before run() fails clearly; a cancelled call ends")
    func scriptsAndLifecycle() async throws {
        try await withLocalCluster(replicasPerPrimary: 0) { cluster in
            var configuration = try RedisConfiguration(url: cluster.seedURL)
            configuration.connectTimeout = .milliseconds(300)
            // Never run: the call fails within the connect timeout, naming the cause.
            let idle = RedisClient(configuration: configuration, scripts: PresenceScripts.all, logger: quietLogger())
            await #expect {
                try await idle.send("GET", "x")
            } throws: { ($0 as? RedisError)?.code == .notRunning }

            try await withClient(configuration) { client in
                let registry = PresenceRegistry(client: client, configuration: clusterConfiguration)
                let running = try await startNode("flushed", client: client, configuration: clusterConfiguration)
                var expected = try await populate([running], count: 300)
                for primary in try await client.primaryClients() { _ = try await primary.send("SCRIPT", "FLUSH") }
                for i in 0..<300 {
                    try running.node.connected(socketID: "after-\(i)", userID: "au\(i % 3)")
                    expected["after-\(i)"] = "flushed"
                }
                try await running.node.flush()
                #expect(try await complete(registry, expected))

                // A call cancelled while the cluster is frozen ends as cancelled or unavailable,
                // within the command timeout, not after every retry.
                for port in try cluster.primaries() { try cluster.pause(port: port) }
                let started = ContinuousClock.now
                let call = Task { try await client.send("GET", "anything") }
                try await Task.sleep(for: .milliseconds(100))
                call.cancel()
                let result = await call.result
                let took = ContinuousClock.now - started
                for node in cluster.nodes { try cluster.resume(port: node.port) }
                #expect(throws: RedisError.self) { try result.get() }
                #expect(took <= configuration.commandTimeout + .seconds(1))
                await running.crash()
            }
        }
    }

    @Test("a live reshard of 1,000 slots while nodes report and clients look up: no error reaches a caller, no reply crosses, the registry stays exact")
    func liveReshard() async throws {
        try await withLocalCluster(replicasPerPrimary: 0) { cluster in
            try await withClient(try RedisConfiguration(url: cluster.seedURL)) { client in
                let registry = PresenceRegistry(client: client, configuration: clusterConfiguration)
                var nodes: [RunningNode] = []
                for n in 0..<3 { nodes.append(try await startNode("rs-\(n)", client: client, configuration: clusterConfiguration)) }
                var expected = try await populate(nodes, count: 1_000)
                let primaries = try cluster.primaries()
                let stop = StopFlag()
                // Lookups throughout of sockets the churn leaves alone (it disconnects s500 and up):
                // every answer is the socket asked for, on its node.
                let sample = nodes.flatMap { running in (0..<200).map { "\(running.node.nodeID)-s\($0)" } }
                let frozen = expected
                let reader = Task { () -> (answers: Int, problems: [String]) in
                    var answers = 0
                    var problems: [String] = []
                    while !stop.isSet {
                        do {
                            let sockets = try await registry.sockets(sample)
                            for (id, socket) in zip(sample, sockets) where socket?.socketID != id || socket?.nodeID != frozen[id] {
                                problems.append("\(id) read as \(socket.map { "\($0.socketID)@\($0.nodeID)" } ?? "nil")")
                            }
                            answers += 1
                        } catch {
                            problems.append("lookup failed: \(error)")
                        }
                    }
                    return (answers, problems)
                }
                // Churn throughout: new sockets and disconnects on every node.
                let churn = Task { () -> [String: String?] in
                    var changes: [String: String?] = [:]
                    var round = 0
                    while !stop.isSet {
                        for running in nodes {
                            let id = running.node.nodeID
                            try running.node.connected(socketID: "\(id)-new\(round)", userID: "late\(round % 11)")
                            changes["\(id)-new\(round)"] = id
                            _ = try running.node.disconnected(socketID: "\(id)-s\(500 + round)")
                            changes["\(id)-s\(500 + round)"] = String?.none
                            try await running.node.flush()
                        }
                        round += 1
                    }
                    return changes
                }
                try await cluster.reshard(slots: 1_000, from: primaries[0], to: primaries[1])
                stop.set()
                let (answers, problems) = await reader.value
                let changes = try await churn.value
                #expect(problems.isEmpty, "\(problems.prefix(5))")
                #expect(answers > 0)
                #expect(client.metrics.redirectCount > 0, "the reshard never redirected a command: nothing was tested")
                for (id, node) in changes { expected[id] = node }
                for running in nodes { try await running.node.flush() }
                #expect(try await complete(registry, expected.compactMapValues { $0 }))
                let gone = expected.filter { $0.value == nil }.map(\.key)
                #expect(try await registry.sockets(gone).allSatisfy { $0 == nil })
                for running in nodes {
                    let id = running.node.nodeID
                    #expect(try await client.send("SCARD", clusterConfiguration.keys.nodeSockets(id)).int == expected.filter { $0.value == id }.count)
                }
                print("reshard: \(client.metrics.redirectCount) redirects followed, \(answers) lookups of \(sample.count) sockets answered, \(changes.count) changes written meanwhile")
                for running in nodes { try await running.stop() }
            }
        }
    }

    @Test("a slot migrating mid-batch: a call of several operations is not run on the importing node by ASK; each operation lands where its key is")
    func askWithSeveralOperations() async throws {
        try await withLocalCluster(replicasPerPrimary: 0) { cluster in
            try await withClient(try RedisConfiguration(url: cluster.seedURL)) { client in
                let keys = clusterConfiguration.keys
                let writer = PresenceWriter(client: client, configuration: clusterConfiguration)
                let registry = PresenceRegistry(client: client, configuration: clusterConfiguration)
                // Two sockets whose records share a slot.
                let slot = RedisKeySlot.slot(keys.socket("m0"))
                let twins = Array((1..<1_000_000).lazy.map { "m\($0)" }.filter { RedisKeySlot.slot(keys.socket($0)) == slot }.prefix(2))
                let (twin, other) = (twins[0], twins[1])
                let running = try await startNode("asker", client: client, configuration: clusterConfiguration)
                try running.node.connected(socketID: "m0")
                try running.node.connected(socketID: twin)
                try running.node.connected(socketID: other)
                try await running.node.flush()
                // The slot starts migrating; m0's record moves, the twin's stays on the source.
                let source = try cluster.primary(ofSlot: slot)
                let target = try #require(try cluster.primaries().first { $0 != source })
                let sourceID = try await cluster.nodeID(port: source)
                let targetID = try await cluster.nodeID(port: target)
                _ = try await cluster.command(on: target, "CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID)
                _ = try await cluster.command(on: source, "CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetID)
                _ = try await cluster.command(on: source, "MIGRATE", "127.0.0.1", String(target), keys.socket("m0"), "0", "5000")
                // Whether a node holds a key itself (ASKING: the importing node answers for its copy;
                // the migrating one answers ASK for a key it no longer has).
                func holds(_ port: Int, _ key: String) async throws -> Bool {  // a record (not a tombstone)
                    try await withClient(RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port))) { node in
                        let replies = await node.pipeline([RedisCommand("ASKING"), RedisCommand("GET", key)])
                        if case .failure(let error) = replies[1], error.message.hasPrefix("ASK") { return false }
                        return try replies[1].get().string?.contains("\u{1F}") ?? false
                    }
                }
                #expect(try await holds(target, keys.socket("m0")))
                #expect(try await !holds(source, keys.socket("m0")))
                #expect(try await holds(source, keys.socket(twin)))
                // One call: the first (declared) key answers ASK at the source; the twin is not moved.
                _ = try running.node.disconnected(socketID: "m0")
                _ = try running.node.disconnected(socketID: twin)
                try await running.node.flush()
                #expect(try await registry.sockets(["m0", twin]) == [nil, nil])
                #expect(try await !holds(source, keys.socket(twin)), "the twin's record survived on the source")
                #expect(try await !holds(target, keys.socket(twin)))
                // A new key of the slot goes to the importing node; one still on the source is
                // updated there, not copied (a copy would make the migration fail on BUSYKEY).
                // (Its node stopped first: it would reconcile its set and drop m0, which it does not hold.)
                await running.crash()
                let outcomes = await writer.apply(nodeID: "asker", incarnation: running.node.incarnation, events: [
                    .connect(socketID: "m0", userID: nil, meta: [:], connectedAt: Date()),
                    .connect(socketID: other, userID: nil, meta: ["again": "1"], connectedAt: Date()),
                ])
                #expect(try outcomes.map { try $0.get() } == [.created, .updated])
                #expect(try await holds(target, keys.socket("m0")))
                #expect(try await holds(source, keys.socket(other)))
                #expect(try await !holds(target, keys.socket(other)), "a copy of a record still on the source was made on the importing node")
                #expect(try await registry.socket(other)?.meta == ["again": "1"])
            }
        }
    }

    @Test("partial availability: with one shard down, sockets on the other shards still answer; the others answer unavailable, never dead")
    func partialAvailability() async throws {
        // Without full coverage required, the other shards keep serving (operations.md).
        try await withLocalCluster(replicasPerPrimary: 0, extraArguments: ["--cluster-require-full-coverage", "no"]) { cluster in
            var configuration = try RedisConfiguration(url: cluster.seedURL)
            configuration.connectTimeout = .milliseconds(300)
            configuration.commandTimeout = .seconds(1)
            try await withClient(configuration) { client in
                let registry = PresenceRegistry(client: client, configuration: clusterConfiguration)
                let running = try await startNode("partial", client: client, configuration: clusterConfiguration)
                let expected = try await populate([running], count: 1_500)
                let registryPrimary = try cluster.primary(ofSlot: RedisKeySlot.slot(clusterConfiguration.keys.nodeTable))
                let victim = try #require(try cluster.primaries().first { $0 != registryPrimary })
                let owner = try slotOwners(cluster)
                let lost = Set(expected.keys.filter { owner(RedisKeySlot.slot(clusterConfiguration.keys.socket($0))) == victim })
                #expect(!lost.isEmpty && lost.count < expected.count)
                try cluster.kill(port: victim)
                // Wait for the cluster to notice (node timeout), then read one socket at a time.
                try await eventually("the survivors to mark the shard failed") {
                    try cluster.primaries().contains(victim) == false
                }
                var answered = 0
                var unavailable = 0
                for id in expected.keys.sorted().prefix(300) {
                    do {
                        let socket = try await registry.socket(id)
                        #expect(!lost.contains(id), "\(id) on the dead shard answered \(String(describing: socket))")
                        #expect(socket?.nodeID == "partial", "\(id) read as \(String(describing: socket))")
                        answered += 1
                    } catch let error as RedisError {
                        #expect(lost.contains(id), "\(id) on a live shard failed: \(error)")
                        #expect(error.isConnectivity, "\(error)")
                        unavailable += 1
                    }
                }
                print("partial availability: \(answered) answered, \(unavailable) unavailable (their shard is down)")
                #expect(answered > 0 && unavailable > 0)
                await running.crash()
            }
        }
    }
}

/// Slot → the port of its primary, from one `CLUSTER NODES` (each `primary(ofSlot:)` runs redis-cli
/// and blocks its thread: thousands of them would starve every other test's heartbeats).
private func slotOwners(_ cluster: LocalRedisCluster) throws -> (Int) -> Int? {
    var owners = [Int?](repeating: nil, count: 16_384)
    for range in try cluster.slotRanges() { for slot in range.slots { owners[slot] = range.primaryPort } }
    return { owners[$0] }
}

/// A flag a test raises to stop its background tasks.
private final class StopFlag: Sendable {
    private let raised = Atomic<Bool>(false)
    var isSet: Bool { raised.load(ordering: .relaxed) }
    func set() { raised.store(true, ordering: .relaxed) }
}
