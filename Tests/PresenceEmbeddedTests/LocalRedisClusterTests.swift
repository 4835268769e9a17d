import Foundation
@testable import PresenceEmbedded
import PresenceTestSupport
import Synchronization
import Testing

/// The local Redis Cluster harness against real redis-servers: its topology, where keys land, a
/// failover and a rejoin, a reshard. The read-only checks use the process-wide shared cluster; the
/// tests that break or reshape a cluster start their own.
@Suite("LocalRedisCluster: a real Redis Cluster on loopback")
struct LocalRedisClusterTests {
    // MARK: - The shared cluster, as started

    @Test("3 primaries, each with one replica that replicates from it; all 16384 slots covered")
    func topology() async throws {
        let cluster = try await SharedRedisCluster.get()
        #expect(cluster.nodes.count == 6)
        #expect(cluster.nodes.allSatisfy { $0.isRunning && !$0.isPaused })
        let primaries = try cluster.primaries()
        #expect(primaries.count == 3)
        var replicas: [Int] = []
        for primary in primaries {
            let replica = try #require(try cluster.replica(of: primary), "primary \(primary) has no replica")
            replicas.append(replica)
            // The replica's own word, not only the cluster's view of it.
            let replication = ClusterObservation.fields(try await cluster.command(on: replica, "INFO", "replication"))
            #expect(replication["role"] == "slave")
            #expect(replication["master_port"] == String(primary))
            #expect(replication["master_link_status"] == "up")
        }
        #expect(Set(replicas).count == 3)
        #expect(Set(primaries + replicas) == Set(cluster.ports))

        // Slot ranges: contiguous from 0 to 16383, no gap, no overlap, owned by the primaries only.
        let ranges = try cluster.slotRanges()
        var next = 0
        for range in ranges {
            #expect(range.slots.lowerBound == next)
            #expect(primaries.contains(range.primaryPort))
            next = range.slots.upperBound + 1
        }
        #expect(next == 16384)
        #expect(Set(ranges.map(\.primaryPort)) == Set(primaries))
        for port in cluster.ports {
            let info = ClusterObservation.fields(try await cluster.command(on: port, "CLUSTER", "INFO"))
            #expect(info["cluster_state"] == "ok")
            #expect(info["cluster_slots_assigned"] == "16384")
            #expect(info["cluster_slots_ok"] == "16384")
            #expect(info["cluster_known_nodes"] == "6")
        }
        #expect(cluster.seedURL == "redis-cluster://" + ranges.map(\.primaryPort).reduce(into: [Int]()) { ports, port in
            if !ports.contains(port) { ports.append(port) }
        }.map { "127.0.0.1:\($0)" }.joined(separator: ","))
    }

    @Test("keys of different hash tags land on different primaries: the owner takes the write, the others answer MOVED")
    func keysByHashTag() async throws {
        let cluster = try await SharedRedisCluster.get()
        let prefix = "lrc-\(UUID().uuidString.prefix(8))"
        let ranges = try cluster.slotRanges()
        func owner(_ key: String) -> Int { ranges.first { $0.slots.contains(LocalRedisCluster.slot(of: key)) }!.primaryPort }
        let primaries = try cluster.primaries()
        // One tag per primary: the first of prefix-0, prefix-1, … whose slot that primary owns.
        var keyByPrimary: [Int: String] = [:]
        var index = 0
        while keyByPrimary.count < primaries.count {
            let key = "{\(prefix)-\(index)}:value"
            if keyByPrimary[owner(key)] == nil { keyByPrimary[owner(key)] = key }
            index += 1
        }
        #expect(Set(keyByPrimary.values.map { LocalRedisCluster.slot(of: $0) }).count == 3)
        for (primary, key) in keyByPrimary {
            #expect(try await cluster.command(on: primary, "SET", key, "on \(primary)") == "OK")
            for other in primaries where other != primary {
                let refused = await #expect(throws: LocalRedisClusterError.self) {
                    try await cluster.command(on: other, "SET", key, "on \(other)")
                }
                #expect(refused?.message.contains("MOVED \(LocalRedisCluster.slot(of: key)) 127.0.0.1:\(primary)") == true)
            }
        }
        for (primary, key) in keyByPrimary {
            #expect(try await cluster.command(on: primary, "GET", key) == "on \(primary)")
            #expect(try await cluster.command(on: primary, "DEL", key) == "1")
        }
    }

    @Test("slot(of:) is the servers' CLUSTER KEYSLOT, hash tags included")
    func slotMatchesServer() async throws {
        let cluster = try await SharedRedisCluster.get()
        #expect(LocalRedisCluster.slot(of: "123456789") == 0x31C3)  // CRC16-XMODEM check value
        let keys = [
            "foo", "bar", "123456789", "{user1000}.following", "{user1000}.followers", "foo{}{bar}", "foo{{bar}}zap",
            "foo{bar}{zap}", "{", "}", "{}", "a{b", "a}b{c}", "presence:{registry}:nodes", "presence:s:{socket-1}",
            "ключ{тег}", "emoji-🙂", "x",
        ]
        for key in keys {
            let server = try await cluster.command(on: cluster.ports[0], "CLUSTER", "KEYSLOT", key)
            #expect(LocalRedisCluster.slot(of: key) == Int(server), "key \(key)")
        }
        #expect(LocalRedisCluster.slot(of: "{user1000}.following") == LocalRedisCluster.slot(of: "{user1000}.followers"))
    }

    // MARK: - Faults, on clusters of their own

    @Test("kill a primary: its replica is promoted within the failover bound; restarted, the old primary rejoins as its replica")
    func failoverAndRejoin() async throws {
        let cluster = try await LocalRedisCluster.start()
        defer { cluster.stop() }
        let victim = try cluster.primaries()[0]
        let replica = try #require(try cluster.replica(of: victim))
        let slot = try #require(try cluster.slotRanges().first { $0.primaryPort == victim }).slots.lowerBound
        let key = (0...).lazy.map { "{failover-\($0)}" }.first { LocalRedisCluster.slot(of: $0) == slot } ?? ""
        #expect(try await cluster.command(on: victim, "SET", key, "written before the kill") == "OK")
        // An acknowledged write may be lost in a failover: wait until the replica has it.
        try await eventually(timeout: cluster.nodeTimeout * 10, "the replica to reach the primary's offset") {
            let primaryOffset = ClusterObservation.fields(try await cluster.command(on: victim, "INFO", "replication"))["master_repl_offset"]
            let replicaOffset = ClusterObservation.fields(try await cluster.command(on: replica, "INFO", "replication"))["slave_repl_offset"]
            return primaryOffset != nil && primaryOffset == replicaOffset
        }

        let clock = ContinuousClock()
        let ((promoted, elapsed), slack) = try await measuringSchedulingSlack {
            let killedAt = clock.now
            try cluster.kill(port: victim)
            let promoted = try await cluster.waitForFailover(of: victim)
            return (promoted, clock.now - killedAt)
        }
        #expect(promoted == replica)
        #expect(elapsed <= cluster.failoverBound + slack, "promoted after \(elapsed) (bound \(cluster.failoverBound), slack \(slack))")
        #expect(cluster.nodes.first { $0.port == victim }?.isRunning == false)
        let primariesNow = try cluster.primaries()
        #expect(primariesNow.count == 3 && primariesNow.contains(promoted) && !primariesNow.contains(victim))
        #expect(try cluster.primary(ofSlot: slot) == promoted)
        #expect(try cluster.replica(of: promoted) == nil)
        #expect(try await cluster.command(on: promoted, "GET", key) == "written before the kill")
        for node in cluster.nodes where node.isRunning {
            #expect(ClusterObservation.fields(try await cluster.command(on: node.port, "CLUSTER", "INFO"))["cluster_state"] == "ok")
        }

        // Same port, same nodes.conf: it comes back under its old id, as the new primary's replica.
        let oldPID = try #require(cluster.nodes.first { $0.port == victim }).pid
        try await cluster.restart(port: victim)
        let restarted = try #require(cluster.nodes.first { $0.port == victim })
        #expect(restarted.isRunning && restarted.pid != oldPID)
        try await cluster.waitUntilOK()
        #expect(try cluster.replica(of: promoted) == victim)

        // A paused primary (SIGSTOP: connections open, no answers) is failed over the same way,
        // and once resumed it learns it was replaced and follows its replica.
        try cluster.pause(port: promoted)
        #expect(cluster.nodes.first { $0.port == promoted }?.isPaused == true)
        #expect(try await cluster.waitForFailover(of: promoted) == victim)
        try cluster.resume(port: promoted)
        try await cluster.waitUntilOK()
        #expect(try cluster.replica(of: victim) == promoted)
        #expect(try await cluster.command(on: victim, "GET", key) == "written before the kill")

        let directory = cluster.directory
        cluster.stop()
        #expect(cluster.nodes.allSatisfy { !$0.isRunning })
        #expect(!FileManager.default.fileExists(atPath: directory.path))
        cluster.stop()  // idempotent
        #expect(throws: LocalRedisClusterError.self) { try cluster.kill(port: victim) }
    }

    @Test("reshard moves 100 slots and their keys from one primary to another; every node agrees")
    func reshard() async throws {
        // Also: a directory of the caller's, kept (only the node files go), and extra arguments.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lrc-reshard-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cluster = try await LocalRedisCluster.start(directory: directory, extraArguments: ["--cluster-node-timeout", "1500"])
        defer { cluster.stop() }
        #expect(cluster.nodeTimeout == .milliseconds(1500))
        #expect(try await cluster.command(on: cluster.ports[0], "CONFIG", "GET", "cluster-node-timeout") == "cluster-node-timeout\n1500")
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("nodes-\(cluster.ports[0]).conf").path))
        let primaries = try cluster.primaries()
        let (from, to) = (primaries[0], primaries[1])
        func slots(of port: Int, _ ranges: [LocalRedisCluster.SlotRange]) -> Set<Int> {
            Set(ranges.filter { $0.primaryPort == port }.flatMap(\.slots))
        }
        let before = try cluster.slotRanges()
        let fromBefore = slots(of: from, before)
        let toBefore = slots(of: to, before)
        // A key in each of the source's 50 lowest and 50 highest slots (redis-cli moves a source's
        // lowest slots first; the check below holds whichever it picks).
        let sorted = fromBefore.sorted()
        let targets = Set(sorted.prefix(50) + sorted.suffix(50))
        var keyBySlot: [Int: String] = [:]
        var index = 0
        while keyBySlot.count < targets.count {
            let key = "{reshard-\(index)}"
            let slot = LocalRedisCluster.slot(of: key)
            if targets.contains(slot) && keyBySlot[slot] == nil { keyBySlot[slot] = key }
            index += 1
        }
        for (slot, key) in keyBySlot {
            #expect(try await cluster.command(on: from, "SET", key, "slot \(slot)") == "OK")
        }

        try await cluster.reshard(slots: 100, from: from, to: to)
        try await cluster.waitUntilOK()

        let after = try cluster.slotRanges()
        let moved = fromBefore.subtracting(slots(of: from, after))
        #expect(moved.count == 100)
        #expect(slots(of: from, after) == fromBefore.subtracting(moved))
        #expect(slots(of: to, after) == toBefore.union(moved))
        #expect(after.reduce(0) { $0 + $1.slots.count } == 16384)
        // Each key is served by its slot's owner now; the moved ones by the target.
        #expect(!moved.isDisjoint(with: keyBySlot.keys))
        for (slot, key) in keyBySlot {
            let owner = moved.contains(slot) ? to : from
            #expect(try cluster.primary(ofSlot: slot) == owner)
            #expect(try await cluster.command(on: owner, "GET", key) == "slot \(slot)")
        }
        // Every node, replicas included, names the new owner.
        for port in cluster.ports {
            let view = ClusterNodesEntry.parse(try await cluster.command(on: port, "CLUSTER", "NODES"))
            let owner = view.first { $0.isPrimary && $0.owns(moved.min()!) }
            #expect(owner?.port == to, "node \(port)")
        }
        cluster.stop()
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    @Test("fewer than 3 primaries is refused before anything starts")
    func tooFewPrimaries() async throws {
        let error = await #expect(throws: LocalRedisClusterError.self) { try await LocalRedisCluster.start(primaries: 2) }
        #expect(error?.code == .invalidArgument)
    }

    // MARK: - The pure parts

    @Test("CLUSTER NODES lines: address forms, flags, slot ranges, migrations skipped")
    func parsesClusterNodes() {
        let text = """
            07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
            67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922 [5461->-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]
            292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master,fail - 1426238316232 1426238316232 3 disconnected
            e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 10923 10925-16383 [10924-<-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]
            6ec23923021cf3ffec47632106199cb7f496ce01 :0@0 handshake,noaddr - 0 0 0 disconnected

            """
        let entries = ClusterNodesEntry.parse(text)
        #expect(entries.count == 5)
        #expect(entries[0].port == 30004 && entries[0].isReplica && entries[0].primaryID == "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca")
        #expect(entries[1].isPrimary && entries[1].slots == [5461...10922] && entries[1].primaryID == nil)
        #expect(entries[2].isFailing && !entries[2].isConnected && entries[2].slots.isEmpty)
        #expect(entries[3].isMyself && entries[3].slots == [0...5460, 10923...10923, 10925...16383])
        #expect(entries[3].owns(10923) && !entries[3].owns(10924))
        #expect(entries[4].port == 0 && entries[4].inHandshake)
    }

    @Test("ClusterHealth: settled, or the first thing that is not, in words")
    func health() {
        // Three primaries on 1…3 (ids a, b, c), replicas on 4…6 following them.
        let ids = [1: "a", 2: "b", 3: "c", 4: "d", 5: "e", 6: "f"]
        let slots = [1: "0-5460", 2: "5461-10922", 3: "10923-16383"]
        func nodes(myself: Int, flags extra: [Int: String] = [:], slotsOf: [Int: String]? = nil) -> String {
            (1...6).map { port in
                var flags = port <= 3 ? "master" : "slave"
                if port == myself { flags = "myself," + flags }
                if let more = extra[port] { flags += "," + more }
                let primary = port <= 3 ? "-" : ids[port - 3]!
                return "\(ids[port]!) 127.0.0.1:\(port)@\(port + 10000) \(flags) \(primary) 0 0 1 connected \((slotsOf ?? slots)[port] ?? "")"
            }.joined(separator: "\n")
        }
        func observation(_ port: Int, state: String = "ok", link: String = "up", offset: Int = 42, nodes text: String? = nil) -> ClusterObservation {
            let replication = port <= 3 ? "role:master\r\nmaster_repl_offset:\(offset)\r\n"
                : "role:slave\r\nmaster_port:\(port - 3)\r\nmaster_link_status:\(link)\r\nslave_repl_offset:\(offset)\r\n"
            return ClusterObservation(
                port: port, clusterInfo: ClusterObservation.fields("# Cluster\r\ncluster_state:\(state)\r\n"),
                nodes: ClusterNodesEntry.parse(text ?? nodes(myself: port)), replication: ClusterObservation.fields(replication))
        }
        let settled = (1...6).map { observation($0) }
        #expect(ClusterHealth.problem(settled, replicasCaughtUp: true) == nil)

        var lagging = settled
        lagging[4] = observation(5, offset: 41)
        #expect(ClusterHealth.problem(lagging, replicasCaughtUp: false) == nil)
        #expect(ClusterHealth.problem(lagging, replicasCaughtUp: true)?.contains("offset 41") == true)

        var linkDown = settled
        linkDown[3] = observation(4, link: "down")
        #expect(ClusterHealth.problem(linkDown, replicasCaughtUp: false)?.contains("master_link_status:down") == true)

        var failing = settled
        failing[0] = observation(1, nodes: nodes(myself: 1, flags: [2: "fail?"]))
        #expect(ClusterHealth.problem(failing, replicasCaughtUp: false)?.contains("flags 127.0.0.1:2 as failing") == true)

        var disagreeing = settled
        disagreeing[5] = observation(6, nodes: nodes(myself: 6, slotsOf: [1: "0-5459", 2: "5460-10922", 3: "10923-16383"]))
        #expect(ClusterHealth.problem(disagreeing, replicasCaughtUp: false)?.contains("do not agree") == true)

        // Primary 1 killed (not asked), nobody has noticed yet: cluster_state still ok everywhere,
        // but its slots are not served.
        let withoutOne = settled.filter { $0.port != 1 }
        #expect(ClusterHealth.problem(withoutOne, replicasCaughtUp: false) == "slot 0 is owned by 127.0.0.1:1, which is not running")

        var down = settled
        down[2] = observation(3, state: "fail")
        #expect(ClusterHealth.problem(down, replicasCaughtUp: false) == "127.0.0.1:3 reports cluster_state:fail")
        #expect(ClusterHealth.problem([], replicasCaughtUp: false) == "no running node to ask")
    }
}
