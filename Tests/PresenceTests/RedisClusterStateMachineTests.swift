@testable import Presence
import Testing

/// The Redis Cluster client's decisions (routing, replies, retries, refreshes), driven by hand:
/// no server, no clock (instants are `t0` plus offsets).
///
/// The cluster: A serves 0-5460 (one replica), B 5461-5999 and 6100-10922 (two replicas), C
/// 10923-16383 and, out of line, 6000-6099 (no replica). Keys and their slots (`CLUSTER KEYSLOT`):
/// `hello` 866, `bar` 5061, `user1000` 3443 → A; `c` 7365, `z` 8157 → B; `foo` 12182, `a` 15495,
/// `k53` 6090 → C.
@Suite("Redis Cluster state machine: routing, redirects, retries, refreshes")
struct RedisClusterStateMachineTests {
    typealias Endpoint = RedisConfiguration.Endpoint
    typealias Machine = RedisClusterStateMachine
    typealias Reply = ClusterShardsReply

    let t0 = ContinuousClock.now
    let a = Endpoint.tcp(host: "10.0.0.1", port: 7000)
    let a1 = Endpoint.tcp(host: "10.0.0.11", port: 7000)
    let b = Endpoint.tcp(host: "10.0.0.2", port: 7000)
    let b1 = Endpoint.tcp(host: "10.0.0.21", port: 7000)
    let b2 = Endpoint.tcp(host: "10.0.0.22", port: 7000)
    let c = Endpoint.tcp(host: "10.0.0.3", port: 7000)
    let seed = Endpoint.tcp(host: "seed.example", port: 6379)

    /// The three shards as `CLUSTER SHARDS` tells them.
    func topology() throws -> RedisClusterTopology {
        let reply = RedisValue.array([
            Reply.shard(slots: [(0, 5460)], nodes: [
                Reply.node(id: "a", ip: "10.0.0.1", endpoint: "10.0.0.1", port: 7000, role: "master"),
                Reply.node(id: "a1", ip: "10.0.0.11", endpoint: "10.0.0.11", port: 7000, role: "replica"),
            ]),
            Reply.shard(slots: [(5461, 5999), (6100, 10922)], nodes: [
                Reply.node(id: "b", ip: "10.0.0.2", endpoint: "10.0.0.2", port: 7000, role: "master"),
                Reply.node(id: "b1", ip: "10.0.0.21", endpoint: "10.0.0.21", port: 7000, role: "replica"),
                Reply.node(id: "b2", ip: "10.0.0.22", endpoint: "10.0.0.22", port: 7000, role: "replica"),
            ]),
            Reply.shard(slots: [(10923, 16383), (6000, 6099)], nodes: [
                Reply.node(id: "c", ip: "10.0.0.3", endpoint: "10.0.0.3", port: 7000, role: "master"),
            ]),
        ])
        return try RedisClusterTopology.parse(shards: reply, seedHost: "seed.example")
    }

    /// A machine that learned ``topology()`` at `t0`.
    func machine(readFrom: RedisConfiguration.Cluster.ReadFrom = .primaries, maximumAttempts: Int = 4, replicaChoice: Int = 1) throws -> Machine {
        var machine = Machine(
            configuration: .init(seeds: [seed], readFrom: readFrom, refreshInterval: .seconds(10), maximumAttempts: maximumAttempts),
            replicaChoice: replicaChoice)
        machine.refreshed(try topology(), now: t0)
        return machine
    }

    /// Where `route` sends a command (`nil` for a failure), and whether behind `ASKING`.
    func target(_ route: Machine.Route) -> Endpoint? {
        if case .node(let endpoint, asking: false) = route { return endpoint }
        return nil
    }

    func failure(_ route: Machine.Route) -> RedisError? {
        if case .fail(let error) = route { return error }
        return nil
    }

    func serverError(_ message: String) -> Result<RedisValue, RedisError> { .failure(RedisError(.server, message)) }

    // MARK: Slot map and routing

    @Test("the slot map of a parsed topology, a shard's out-of-line range included")
    func slotMap() throws {
        let machine = try machine()
        let topology = try #require(machine.topology)
        let expected: [(Int, Endpoint)] = [
            (0, a), (5460, a), (5461, b), (5999, b), (6000, c), (6099, c), (6100, b), (10922, b), (10923, c), (16383, c),
        ]
        for (slot, primary) in expected {
            #expect(topology.shard(ofSlot: slot)?.primary == primary, "slot \(slot)")
        }
        #expect(topology.primaries == [a, b, c])
        #expect(topology.uncoveredSlots == 0)
        #expect(topology.shard(ofSlot: 7000)?.replicas == [b1, b2])
        #expect(!machine.refreshRequested)
        #expect(machine.lastRefresh == t0)
    }

    @Test("commands go to the primary of their key's slot; hash tags decide the slot")
    func routesByKey() throws {
        let machine = try machine()
        #expect(RedisKeySlot.slot("c") == 7365 && RedisKeySlot.slot("k53") == 6090 && RedisKeySlot.slot("hello") == 866)
        #expect(target(machine.route(RedisCommand("HGET", "hello", "f"))) == a)
        #expect(target(machine.route(RedisCommand("HGET", "c", "f"))) == b)
        #expect(target(machine.route(RedisCommand("HGET", "foo", "f"))) == c)
        #expect(target(machine.route(RedisCommand("HGET", "k53", "f"))) == c, "the out-of-line range")
        // {user1000} is slot 3443 (A) whatever surrounds it; {c} is 7365 (B).
        #expect(target(machine.route(RedisCommand("SADD", "{user1000}.following", "x"))) == a)
        #expect(target(machine.route(RedisCommand("SADD", "{user1000}.followers", "x"))) == a)
        #expect(target(machine.route(RedisCommand("HSET", "presence:{c}:socket:9", "n", "x"))) == b)
        // Several keys: the first decides.
        #expect(target(machine.route(RedisCommand("DEL", "foo", "hello"))) == c)
        #expect(target(machine.route(RedisCommand("EVALSHA", "0123", "2", "z", "foo", "arg"))) == b)
        #expect(machine.primary(of: "k53") == c)
        #expect(machine.primary(of: "{user1000}x") == a)
    }

    @Test("keyless commands go to the first primary; routed(by:) pins them (or overrides a key) to a key's node")
    func keylessAndRoutedBy() throws {
        let machine = try machine()
        #expect(target(machine.route(RedisCommand("PING"))) == a)
        #expect(target(machine.route(RedisCommand("TIME"))) == a)
        #expect(target(machine.route(RedisCommand("SCRIPT", "LOAD", "return 1"))) == a)
        #expect(target(machine.route(RedisCommand("TIME").routed(by: "foo"))) == c)
        #expect(target(machine.route(RedisCommand("TIME").routed(by: "c"))) == b)
        #expect(target(machine.route(RedisCommand("HGET", "hello", "f").routed(by: "foo"))) == c)
    }

    @Test("with readFrom .replicas, reads go to the shard's chosen replica (its primary when it has none); writes and scripts to the primary")
    func readFromReplicas() throws {
        let machine = try machine(readFrom: .replicas, replicaChoice: 1)
        #expect(target(machine.route(RedisCommand("HGET", "c", "f"))) == b2, "choice 1 of [b1, b2]")
        #expect(target(machine.route(RedisCommand("SMEMBERS", "z"))) == b2)
        #expect(target(machine.route(RedisCommand("hgetall", "c"))) == b2, "names are case-insensitive")
        #expect(target(machine.route(RedisCommand("HGET", "hello", "f"))) == a1, "choice 1 of [a1]")
        #expect(target(machine.route(RedisCommand("HGET", "foo", "f"))) == c, "C has no replica")
        #expect(target(machine.route(RedisCommand("TIME").routed(by: "c"))) == b2, "TIME beside the reads reads that replica's clock")
        #expect(target(machine.route(RedisCommand("HSET", "c", "f", "v"))) == b)
        #expect(target(machine.route(RedisCommand("EVALSHA", "0123", "1", "c", "arg"))) == b)
        #expect(target(machine.route(RedisCommand("DEL", "c"))) == b)
        #expect(target(machine.route(RedisCommand("PING"))) == a, "keyless: the first primary")

        let other = try self.machine(readFrom: .replicas, replicaChoice: 2)
        #expect(target(other.route(RedisCommand("HGET", "c", "f"))) == b1, "choice 2 of [b1, b2]")
    }

    @Test("with readFrom .primaries, reads go to the primary too")
    func readFromPrimaries() throws {
        let machine = try machine(readFrom: .primaries)
        #expect(target(machine.route(RedisCommand("HGET", "c", "f"))) == b)
        #expect(target(machine.route(RedisCommand("HGET", "hello", "f"))) == a)
        #expect(target(machine.route(RedisCommand("TIME").routed(by: "c"))) == b)
        #expect(target(machine.route(RedisCommand("HSET", "c", "f", "v"))) == b)
    }

    @Test("a transaction goes where its first key is, to the primary unless every command only reads")
    func routesTransactions() throws {
        func lead(_ commands: RedisCommand...) -> RedisCommand { Machine.routingCommand(ofTransaction: commands) }
        let replicas = try machine(readFrom: .replicas, replicaChoice: 1)
        // A keyless command first: the key after it decides (not the first primary, A).
        #expect(target(replicas.route(lead(RedisCommand("TIME"), RedisCommand("HGET", "c", "f")))) == b2)
        #expect(target(replicas.route(lead(RedisCommand("PING"), RedisCommand("HSET", "c", "f", "v")))) == b)
        // A read first, then a write: the primary (a replica would refuse the write).
        #expect(target(replicas.route(lead(RedisCommand("HGET", "c", "f"), RedisCommand("HSET", "c", "f", "v")))) == b)
        #expect(target(replicas.route(lead(RedisCommand("HGET", "c", "f"), RedisCommand("HLEN", "c")))) == b2)
        #expect(target(replicas.route(lead(RedisCommand("HSET", "foo", "f", "v")))) == c)
        #expect(target(replicas.route(lead(RedisCommand("TIME").routed(by: "hello"), RedisCommand("HGET", "c", "f")))) == a1)
        #expect(target(replicas.route(lead(RedisCommand("TIME")))) == a, "keyless: the first primary")
        let primaries = try machine(readFrom: .primaries)
        #expect(target(primaries.route(lead(RedisCommand("TIME"), RedisCommand("HGET", "c", "f")))) == b)
    }

    @Test("no topology yet, or a slot no shard serves: the route fails with a clear unavailable error")
    func unroutable() throws {
        let fresh = Machine(configuration: .init(seeds: [seed]), replicaChoice: 0)
        let unknown = try #require(failure(fresh.route(RedisCommand("HGET", "c", "f"))))
        #expect(unknown.code == .unavailable)
        #expect(unknown.message.contains("CLUSTER SHARDS"))
        #expect(failure(fresh.route(RedisCommand("PING")))?.code == .unavailable)
        #expect(fresh.primary(of: "c") == nil)

        // B's primary failed: its slots are uncovered.
        var machine = try machine()
        let reply = RedisValue.array([
            Reply.shard(slots: [(0, 5460)], nodes: [Reply.node(id: "a", ip: "10.0.0.1", endpoint: "10.0.0.1", port: 7000, role: "master")]),
            Reply.shard(slots: [(5461, 10922)], nodes: [
                Reply.node(id: "b", ip: "10.0.0.2", endpoint: "10.0.0.2", port: 7000, role: "master", health: "failed"),
            ]),
            Reply.shard(slots: [(10923, 16383)], nodes: [Reply.node(id: "c", ip: "10.0.0.3", endpoint: "10.0.0.3", port: 7000, role: "master")]),
        ])
        machine.refreshed(try RedisClusterTopology.parse(shards: reply, seedHost: "h"), now: t0)
        let uncovered = try #require(failure(machine.route(RedisCommand("HGET", "c", "f"))))
        #expect(uncovered.code == .unavailable)
        #expect(uncovered.message.contains("hash slot 7365"))
        #expect(target(machine.route(RedisCommand("HGET", "foo", "f"))) == c)
        #expect(machine.primary(of: "c") == nil)

        // No shard serves anything: keyless commands fail too.
        machine.refreshed(RedisClusterTopology(shards: [], ranges: []), now: t0)
        let none = try #require(failure(machine.route(RedisCommand("PING"))))
        #expect(none.code == .unavailable)
        #expect(none.message.contains("no primary"))
    }

    // MARK: Replies

    @Test("MOVED to a known primary moves that slot only, redirects, and asks for a refresh")
    func movedToKnownPrimary() throws {
        var machine = try machine()
        let verdict = machine.verdict(for: serverError("MOVED 7365 10.0.0.3:7000"), from: b)
        #expect(verdict == .redirect)
        let topology = try #require(machine.topology)
        #expect(topology.shard(ofSlot: 7365)?.primary == c)
        #expect(topology.shard(ofSlot: 7364)?.primary == b)
        #expect(topology.shard(ofSlot: 7366)?.primary == b)
        #expect(target(machine.route(RedisCommand("HGET", "c", "f"))) == c)
        #expect(machine.refreshRequested)
        #expect(machine.refreshDue(now: t0 + .milliseconds(100)))
    }

    @Test("MOVED to an unknown node leaves the map and retries once the topology is asked again")
    func movedToUnknownNode() throws {
        var machine = try machine()
        let before = machine.topology
        let verdict = machine.verdict(for: serverError("MOVED 7365 10.0.0.99:7000"), from: b)
        // Not .redirect: the map still names B, which just refused the command.
        #expect(verdict == .retryAfterRefresh)
        #expect(target(machine.route(RedisCommand("HGET", "c", "f"))) == b)
        #expect(machine.topology == before)
        #expect(machine.refreshRequested)
        // A replica is no primary either (it may just have been promoted: a refresh learns it).
        var other = try self.machine()
        let otherVerdict = other.verdict(for: serverError("MOVED 7365 10.0.0.21:7000"), from: b)
        #expect(otherVerdict == .retryAfterRefresh)
        #expect(other.topology == before)
        #expect(other.refreshRequested)
    }

    @Test("MOVED with an empty host means the node that answered")
    func movedEmptyHost() throws {
        let parsed = try #require(Machine.redirect("MOVED 3999 :6381", from: .tcp(host: "10.0.0.7", port: 7000)))
        #expect(parsed.slot == 3999)
        #expect(parsed.target == .tcp(host: "10.0.0.7", port: 6381))

        var machine = try machine()
        // C answered for slot 3999 (A's) that it now serves: "MOVED 3999 :7000" from C is C.
        let verdict = machine.verdict(for: serverError("MOVED 3999 :7000"), from: c)
        #expect(verdict == .redirect)
        #expect(machine.topology?.shard(ofSlot: 3999)?.primary == c)
        #expect(machine.topology?.shard(ofSlot: 3998)?.primary == a)
        // Over a unix socket there is no host to borrow: the reply is the caller's.
        #expect(Machine.redirect("MOVED 3999 :6381", from: .unix(path: "/tmp/r.sock")) == nil)
    }

    @Test("IPv6 targets: brackets removed")
    func movedIPv6() throws {
        let parsed = try #require(Machine.redirect("MOVED 12182 [::1]:7000", from: a))
        #expect(parsed.slot == 12182)
        #expect(parsed.target == .tcp(host: "::1", port: 7000))
        let asked = try #require(Machine.redirect("ASK 12182 [fe80::1:2]:7001", from: a))
        #expect(asked.target == .tcp(host: "fe80::1:2", port: 7001))

        var machine = try machine()
        let verdict = machine.verdict(for: serverError("ASK 12182 [::1]:7000"), from: c)
        #expect(verdict == .ask(.tcp(host: "::1", port: 7000)))
    }

    @Test("malformed redirects are the caller's errors")
    func malformedRedirects() throws {
        #expect(Machine.redirect("MOVED", from: a) == nil)
        #expect(Machine.redirect("MOVED x 10.0.0.1:7000", from: a) == nil)
        #expect(Machine.redirect("MOVED 1 10.0.0.1", from: a) == nil)
        #expect(Machine.redirect("MOVED 1 10.0.0.1:port", from: a) == nil)
        var machine = try machine()
        let before = machine.topology
        let moved = machine.verdict(for: serverError("MOVED 7365"), from: b)
        #expect(moved == .done)
        let asked = machine.verdict(for: serverError("ASK seven 10.0.0.3:7000"), from: b)
        #expect(asked == .done)
        #expect(machine.topology == before)
        #expect(!machine.refreshRequested)
    }

    @Test("ASK: send once to the target; the map stays and no refresh is asked")
    func ask() throws {
        var machine = try machine()
        let before = machine.topology
        let known = machine.verdict(for: serverError("ASK 7365 10.0.0.3:7000"), from: b)
        #expect(known == .ask(c))
        let unknown = machine.verdict(for: serverError("ASK 7365 10.0.0.99:7000"), from: b)
        #expect(unknown == .ask(.tcp(host: "10.0.0.99", port: 7000)))
        #expect(machine.topology == before)
        #expect(target(machine.route(RedisCommand("HGET", "c", "f"))) == b)
        #expect(!machine.refreshRequested)
    }

    @Test("TRYAGAIN and LOADING: retry after a pause; CLUSTERDOWN and MASTERDOWN: the same, and a refresh")
    func pausedRetries() throws {
        let cases: [(String, Bool)] = [
            ("TRYAGAIN Multiple keys request during rehashing of slot", false),
            ("LOADING Redis is loading the dataset in memory", false),
            ("CLUSTERDOWN The cluster is down", true),
            ("CLUSTERDOWN Hash slot not served", true),
            ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", true),
        ]
        for (message, refresh) in cases {
            var machine = try machine()
            let verdict = machine.verdict(for: serverError(message), from: b)
            #expect(verdict == .retryAfterPause, "\(message)")
            #expect(machine.refreshRequested == refresh, "\(message)")
        }
    }

    @Test("connectivity: not sent → refresh and retry; sent but unanswered → the caller's, and a refresh")
    func connectivity() throws {
        let cases: [(RedisError.Code, Machine.Verdict)] = [
            (.connectionFailed, .retryAfterRefresh),
            (.unavailable, .retryAfterRefresh),
            (.replica, .retryAfterRefresh),
            (.connectionLost, .doneAndRefresh),
            (.timeout, .doneAndRefresh),
        ]
        for (code, verdict) in cases {
            var machine = try machine()
            let answer = machine.verdict(for: .failure(RedisError(code, "x")), from: b)
            #expect(answer == verdict, "\(code)")
            #expect(machine.refreshRequested, "\(code)")
        }
    }

    @Test("a value, an ordinary error reply or a local failure is the caller's, with no refresh")
    func done() throws {
        let results: [Result<RedisValue, RedisError>] = [
            .success(.integer(1)),
            .success(.null),
            serverError("WRONGTYPE Operation against a key holding the wrong kind of value"),
            serverError("ERR unknown command 'FOO'"),
            serverError("NOSCRIPT No matching script"),
            .failure(RedisError(.noScript, "x")),
            .failure(RedisError(.shutdown, "x")),
            .failure(RedisError(.cancelled, "x")),
            .failure(RedisError(.protocolError, "x")),
        ]
        for result in results {
            var machine = try machine()
            let before = machine.topology
            let verdict = machine.verdict(for: result, from: b)
            #expect(verdict == .done, "\(result)")
            #expect(!machine.refreshRequested, "\(result)")
            #expect(machine.topology == before)
        }
    }

    // MARK: Retries

    @Test("attempts are bounded by maximumAttempts (at least one)")
    func boundedAttempts() throws {
        let machine = try machine(maximumAttempts: 4)
        #expect(machine.mayRetry(attempts: 1))
        #expect(machine.mayRetry(attempts: 3))
        #expect(!machine.mayRetry(attempts: 4))
        #expect(!machine.mayRetry(attempts: 5))
        let once = try self.machine(maximumAttempts: 0)
        #expect(once.maximumAttempts == 1)
        #expect(!once.mayRetry(attempts: 1))
    }

    @Test("the pause doubles from 10 ms up to 320 ms, scaled by a jitter clamped to 0.5...1")
    func pause() {
        #expect(Machine.pause(attempt: 1, jitter: 1) == .milliseconds(10))
        #expect(Machine.pause(attempt: 2, jitter: 1) == .milliseconds(20))
        #expect(Machine.pause(attempt: 3, jitter: 1) == .milliseconds(40))
        #expect(Machine.pause(attempt: 5, jitter: 1) == .milliseconds(160))
        #expect(Machine.pause(attempt: 6, jitter: 1) == .milliseconds(320))
        #expect(Machine.pause(attempt: 7, jitter: 1) == .milliseconds(320))
        #expect(Machine.pause(attempt: 1_000, jitter: 1) == .milliseconds(320))
        #expect(Machine.pause(attempt: 0, jitter: 1) == .milliseconds(10))
        #expect(Machine.pause(attempt: -3, jitter: 1) == .milliseconds(10))
        #expect(Machine.pause(attempt: 3, jitter: 0.75) == .milliseconds(30))
        #expect(Machine.pause(attempt: 1, jitter: 0.5) == .milliseconds(5))
        #expect(Machine.pause(attempt: 1, jitter: 0.1) == .milliseconds(5))
        #expect(Machine.pause(attempt: 1, jitter: 0) == .milliseconds(5))
        #expect(Machine.pause(attempt: 6, jitter: 7) == .milliseconds(320))
        for attempt in 1...10 {
            let jittered = Machine.pause(attempt: attempt, jitter: Double.random(in: 0.5...1))
            #expect(jittered >= Machine.pause(attempt: attempt, jitter: 0.5))
            #expect(jittered <= Machine.pause(attempt: attempt, jitter: 1))
        }
    }

    // MARK: Refreshes

    @Test("refresh due: first use; periodically; when forced, spaced by minimumRefreshSpacing")
    func refreshDue() throws {
        var fresh = Machine(configuration: .init(seeds: [seed], refreshInterval: .seconds(10)), replicaChoice: 0)
        #expect(fresh.refreshRequested)
        #expect(fresh.refreshDue(now: t0))
        fresh.refreshed(try topology(), now: t0)
        #expect(!fresh.refreshRequested)
        #expect(!fresh.refreshDue(now: t0))
        #expect(!fresh.refreshDue(now: t0 + .milliseconds(100)))
        #expect(!fresh.refreshDue(now: t0 + .seconds(10) - .milliseconds(1)))
        #expect(fresh.refreshDue(now: t0 + .seconds(10)))

        #expect(Machine.minimumRefreshSpacing == .milliseconds(100))
        fresh.requestRefresh()
        #expect(!fresh.refreshDue(now: t0 + .milliseconds(99)))
        #expect(fresh.refreshDue(now: t0 + .milliseconds(100)))
        fresh.refreshed(try topology(), now: t0 + .milliseconds(100))
        #expect(!fresh.refreshDue(now: t0 + .milliseconds(150)))
        #expect(fresh.lastRefresh == t0 + .milliseconds(100))
    }

    @Test("a failed refresh keeps the map and is tried again after the spacing, a map known or not")
    func refreshAfterFailure() throws {
        var machine = try machine()
        let before = machine.topology
        machine.refreshFailed(now: t0 + .seconds(1))
        #expect(machine.topology == before)
        #expect(machine.refreshRequested)
        #expect(machine.lastRefresh == t0 + .seconds(1))
        #expect(!machine.refreshDue(now: t0 + .seconds(1) + .milliseconds(99)))
        #expect(machine.refreshDue(now: t0 + .seconds(1) + .milliseconds(100)))

        var fresh = Machine(configuration: .init(seeds: [seed]), replicaChoice: 0)
        #expect(fresh.refreshDue(now: t0))
        fresh.refreshFailed(now: t0)
        #expect(fresh.topology == nil)
        #expect(!fresh.refreshDue(now: t0 + .milliseconds(99)))
        #expect(fresh.refreshDue(now: t0 + .milliseconds(100)))
    }

    @Test("a topology with uncovered slots keeps asking for a refresh, spaced; a full one stops it")
    func uncoveredKeepsRefreshing() throws {
        var machine = try machine()
        let partial = RedisClusterTopology(shards: [.init(primary: a, replicas: [])], ranges: [[0...16382]])
        #expect(partial.uncoveredSlots == 1)
        machine.refreshed(partial, now: t0)
        #expect(machine.refreshRequested)
        #expect(!machine.refreshDue(now: t0 + .milliseconds(99)))
        #expect(machine.refreshDue(now: t0 + .milliseconds(100)))
        machine.refreshed(partial, now: t0 + .milliseconds(100))
        #expect(machine.refreshRequested)
        #expect(machine.refreshDue(now: t0 + .milliseconds(200)))
        machine.refreshed(try topology(), now: t0 + .milliseconds(200))
        #expect(!machine.refreshRequested)
        #expect(!machine.refreshDue(now: t0 + .milliseconds(300)))
    }

    @Test("refresh candidates: the primaries, then their replicas, then the seeds not already listed")
    func refreshCandidates() throws {
        let seedX = Endpoint.tcp(host: "seed-x", port: 6379)
        let seedY = Endpoint.tcp(host: "seed-y", port: 6379)
        let machine = try machine()
        #expect(machine.refreshCandidates(seeds: [b, seedX, a1, seedY, seedX]) == [a, b, c, a1, b1, b2, seedX, seedY])
        let fresh = Machine(configuration: .init(seeds: [seed]), replicaChoice: 0)
        #expect(fresh.refreshCandidates(seeds: [seedX, seedY, seedX]) == [seedX, seedY])
    }

    @Test("failovers: a slot whose primary was replaced by a node that was not one is reported once; a reshard, or a lagging view naming the old primary again, is not")
    func failovers() throws {
        var machine = try machine()
        // A's replica a1 takes over A's slots; A is gone.
        let promoted = RedisValue.array([
            Reply.shard(slots: [(0, 5460)], nodes: [Reply.node(id: "a1", ip: "10.0.0.11", endpoint: "10.0.0.11", port: 7000, role: "master")]),
            Reply.shard(slots: [(5461, 5999), (6100, 10922)], nodes: [Reply.node(id: "b", ip: "10.0.0.2", endpoint: "10.0.0.2", port: 7000, role: "master")]),
            Reply.shard(slots: [(10923, 16383), (6000, 6099)], nodes: [Reply.node(id: "c", ip: "10.0.0.3", endpoint: "10.0.0.3", port: 7000, role: "master")]),
        ])
        let failedOver = machine.refreshed(try RedisClusterTopology.parse(shards: promoted, seedHost: "x"), now: t0 + .seconds(1))
        #expect(failedOver == Array(0...5460))
        // A node that lags still names A: ignored; the fresh view again: nothing new.
        #expect(machine.refreshed(try topology(), now: t0 + .seconds(2)).isEmpty)
        #expect(machine.refreshed(try RedisClusterTopology.parse(shards: promoted, seedHost: "x"), now: t0 + .seconds(3)).isEmpty)
        // A reshard: slots 6000-6099 move from C to B, and C is still a primary.
        let resharded = RedisValue.array([
            Reply.shard(slots: [(0, 5460)], nodes: [Reply.node(id: "a1", ip: "10.0.0.11", endpoint: "10.0.0.11", port: 7000, role: "master")]),
            Reply.shard(slots: [(5461, 10922)], nodes: [Reply.node(id: "b", ip: "10.0.0.2", endpoint: "10.0.0.2", port: 7000, role: "master")]),
            Reply.shard(slots: [(10923, 16383)], nodes: [Reply.node(id: "c", ip: "10.0.0.3", endpoint: "10.0.0.3", port: 7000, role: "master")]),
        ])
        #expect(machine.refreshed(try RedisClusterTopology.parse(shards: resharded, seedHost: "x"), now: t0 + .seconds(4)).isEmpty)
    }
}
