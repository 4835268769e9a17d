import Foundation
@testable import Presence
import Testing

/// The node's decisions, without Redis or timers: every outcome is fed by hand, time is a value.
@Suite("Node state machine: heartbeats, batches, failures, paced recovery, reconcile, flush")
struct PresenceNodeStateMachineTests {
    typealias Machine = PresenceNodeStateMachine<Int>

    static let configuration = PresenceConfiguration(heartbeatInterval: .seconds(2), nodeTTL: .seconds(6), batchSize: 100)
    let t0 = ContinuousClock.now

    func machine(sockets: Int = 0) -> Machine {
        var machine = Machine(settings: .init(configuration: Self.configuration))
        for i in 0..<sockets { machine.connected("s\(i)", socket("u\(i % 7)")) }
        return machine
    }

    func socket(_ user: String? = nil) -> Machine.LocalSocket {
        Machine.LocalSocket(userID: user, meta: [:], connectedAt: Date(timeIntervalSince1970: 1_000))
    }

    func result(_ status: HeartbeatResult.Status, indexed: Int) -> HeartbeatResult {
        HeartbeatResult(status: status, expiresAt: Date(), indexedSockets: indexed)
    }

    /// Every action the machine starts now, until it waits; and what it waits for.
    func actions(_ machine: inout Machine, at now: ContinuousClock.Instant) -> (actions: [Machine.Action], wake: ContinuousClock.Instant?) {
        var started: [Machine.Action] = []
        while true {
            switch machine.next(now: now) {
            case .run(let action): started.append(action)
            case .wait(let until): return (started, until)
            }
        }
    }

    func writes(_ actions: [Machine.Action]) -> [(batch: Int, events: [SocketEvent])] {
        actions.compactMap { if case .write(let batch, let events, _) = $0 { (batch, events) } else { nil } }
    }

    /// Starts the machine and completes its first registration: heartbeat (`new`), the unpaced
    /// write of every socket, and the reconcile that follows.
    func registered(sockets: Int) -> Machine {
        var machine = machine(sockets: sockets)
        machine.start()
        guard case .run(.heartbeat) = machine.next(now: t0) else { Issue.record("no heartbeat first"); return machine }
        machine.heartbeatAnswered(result(.new, indexed: 0), now: t0, jitter: 0)
        var written = Set<String>()
        while true {
            let step = actions(&machine, at: t0)
            let batches = writes(step.actions)
            if batches.isEmpty {
                if step.actions.contains(where: { if case .listSet = $0 { true } else { false } }) {
                    _ = machine.reconcile(listed: written)
                }
                break
            }
            for (batch, events) in batches {
                written.formUnion(events.map(\.socketID))
                _ = machine.batchFinished(batch, failed: [], now: t0, jitter: 0)
            }
        }
        #expect(written.count == sockets)
        return machine
    }

    @Test("the first action is a heartbeat; nothing is written before Redis answered it")
    func registersFirst() {
        var machine = machine(sockets: 10)
        machine.start()
        let step = actions(&machine, at: t0)
        #expect(step.actions.count == 1)
        guard case .heartbeat(let sockets, let users)? = step.actions.first else { Issue.record("\(step.actions)"); return }
        #expect(sockets == 10 && users == 7)
        #expect(writes(actions(&machine, at: t0 + .seconds(5)).actions).isEmpty)
    }

    @Test("the first registration writes every socket at once in full batches, then reconciles and removes what the node does not hold")
    func firstRegistration() {
        var machine = machine(sockets: 350)
        machine.start()
        _ = actions(&machine, at: t0)
        let answer = machine.heartbeatAnswered(result(.new, indexed: 0), now: t0, jitter: 0.9)
        #expect(!answer.resync, "a first registration is not a recovery")
        let step = actions(&machine, at: t0)
        let batches = writes(step.actions)
        #expect(machine.settings.changeBatchesInFlight == 3)
        #expect(batches.map(\.events.count) == [100, 100, 100], "unpaced: full batches, three in flight, no delay")
        for (batch, _) in batches { _ = machine.batchFinished(batch, failed: [], now: t0, jitter: 0) }
        let rest = writes(actions(&machine, at: t0).actions)
        #expect(rest.map(\.events.count) == [50])
        guard let last = rest.first else { return }
        _ = machine.batchFinished(last.batch, failed: [], now: t0, jitter: 0)
        let listing = actions(&machine, at: t0).actions
        guard case .listSet? = listing.first else { Issue.record("expected a reconcile, got \(listing)"); return }
        let (remove, _) = machine.reconcile(listed: Set((0..<350).map { "s\($0)" } + ["old-1", "old-2"]))
        #expect(Set(remove) == ["old-1", "old-2"])
    }

    @Test("changes are coalesced per socket and a socket is never in two batches in flight")
    func coalescing() {
        var machine = registered(sockets: 0)
        machine.connected("a", socket("u"))
        let v1 = machine.disconnected("a")
        #expect(v1)
        machine.connected("b", socket())
        var step = writes(actions(&machine, at: t0).actions)
        #expect(step.count == 1)
        let events = Set(step[0].events)
        #expect(events == [.disconnect(socketID: "a", userID: "u"), .connect(socketID: "b", userID: nil, meta: [:], connectedAt: Date(timeIntervalSince1970: 1_000))])
        // b changes while its batch is in flight: the change waits for that batch.
        let v2 = machine.disconnected("b")
        #expect(v2)
        #expect(writes(actions(&machine, at: t0).actions).isEmpty)
        _ = machine.batchFinished(step[0].batch, failed: [], now: t0, jitter: 0)
        step = writes(actions(&machine, at: t0).actions)
        #expect(step.map(\.events) == [[.disconnect(socketID: "b", userID: nil)]])
    }

    @Test("a failed batch retries only its failed events, after a jittered pause, unless a newer change superseded them")
    func failedBatchRetried() {
        var machine = registered(sockets: 0)
        for id in ["a", "b", "c"] { machine.connected(id, socket()) }
        let batch = writes(actions(&machine, at: t0).actions)[0]
        let v3 = machine.flush(1)
        #expect(v3 == (false, false))
        machine.connected("c", Machine.LocalSocket(userID: "new", meta: [:], connectedAt: Date(timeIntervalSince1970: 2_000)))
        let outcome = machine.batchFinished(batch.batch, failed: ["a", "c"], now: t0, jitter: 1)
        #expect(outcome.fail == [1], "a flush waiting for the failed batch fails")
        #expect(!machine.healthy)
        // Writes wait out the pause (50 ms for a first failure, jitter 1): the heartbeat does not.
        let waiting = actions(&machine, at: t0 + .milliseconds(10))
        #expect(waiting.actions.isEmpty)
        #expect(waiting.wake == t0 + .milliseconds(50))
        let retry = writes(actions(&machine, at: t0 + .milliseconds(50)).actions)
        #expect(retry.count == 1)
        #expect(Set(retry[0].events.map(\.socketID)) == ["a", "c"], "b succeeded: not written again")
        #expect(retry[0].events.contains(.connect(socketID: "c", userID: "new", meta: [:], connectedAt: Date(timeIntervalSince1970: 2_000))), "c is written as it is now")
        _ = machine.batchFinished(retry[0].batch, failed: ["a", "c"], now: t0 + .milliseconds(50), jitter: 1)
        #expect(actions(&machine, at: t0 + .milliseconds(60)).wake == t0 + .milliseconds(150), "the pause doubles")
    }

    @Test("Redis lost the node (heartbeat `new` after registration): every socket rewritten after a jittered delay, spread over half an interval, one batch in flight, starting small")
    func pacedRewrite() {
        var machine = registered(sockets: 1_000)
        machine.heartbeatTick()
        _ = actions(&machine, at: t0)
        let answer = machine.heartbeatAnswered(result(.new, indexed: 0), now: t0, jitter: 0.5)
        #expect(answer.resync)
        // Jitter 0.5 of a quarter interval: nothing before t0 + 250 ms.
        let early = actions(&machine, at: t0 + .milliseconds(100))
        #expect(early.actions.isEmpty)
        #expect(early.wake == t0 + .milliseconds(250))
        var now = t0 + .milliseconds(250)
        var written = Set<String>()
        var batches: [(start: ContinuousClock.Instant, size: Int)] = []
        for _ in 0..<20 {
            let step = writes(actions(&machine, at: now).actions)
            #expect(step.count <= 1, "one rewrite batch in flight")
            for (batch, events) in step {
                written.formUnion(events.map(\.socketID))
                batches.append((now, events.count))
                _ = machine.batchFinished(batch, failed: [], now: now, jitter: 0)  // answered at once
            }
            if written.count == 1_000 { break }
            guard let wake = actions(&machine, at: now).wake else { break }
            now = wake
        }
        #expect(written.count == 1_000)
        // Answered within the target, each batch doubles the next, from 16 up to 256.
        #expect(batches.map(\.size) == [16, 32, 64, 128, 256, 256, 248])
        // Each batch takes its share of half an interval (1 s) before the next may start.
        for (previous, next) in zip(batches, batches.dropFirst()) {
            #expect(next.start - previous.start == .seconds(1) * (Double(previous.size) / 1_000))
        }
        #expect(batches.last!.start - t0 <= Self.configuration.heartbeatInterval, "started within one interval of the news")
        guard case .listSet? = actions(&machine, at: now).actions.first else { Issue.record("no reconcile after the rewrite"); return }
    }

    @Test("a rewrite batch answered slower than the target halves the next one and pauses in proportion")
    func congestion() {
        var machine = registered(sockets: 1_000)
        machine.heartbeatTick()
        _ = actions(&machine, at: t0)
        machine.heartbeatAnswered(result(.new, indexed: 0), now: t0, jitter: 0)
        // The target is a two-hundredth of the 2 s interval: 10 ms.
        #expect(machine.congestionPause(roundTrip: .milliseconds(10)) == .zero)
        #expect(machine.congestionPause(roundTrip: .milliseconds(20)) == .milliseconds(20))
        #expect(machine.congestionPause(roundTrip: .milliseconds(40)) == .milliseconds(120))
        #expect(machine.congestionPause(roundTrip: .seconds(10)) == .seconds(4), "at most two intervals")
        var now = t0
        var sizes: [Int] = []
        for roundTrip in [10, 10, 10, 200] {  // milliseconds
            guard let (batch, events) = writes(actions(&machine, at: now).actions).first else { Issue.record("no batch at \(now)"); return }
            sizes.append(events.count)
            now = now + .milliseconds(roundTrip)
            _ = machine.batchFinished(batch, failed: [], now: now, jitter: 0)
            now = actions(&machine, at: now).wake ?? now
        }
        let after = writes(actions(&machine, at: now).actions)
        #expect(sizes == [16, 32, 64, 128])
        #expect(after.first?.events.count == 64, "halved after the slow batch")
    }

    @Test("a count drift reconciles: only the missing sockets are written, only the extra ones removed")
    func driftReconciles() {
        var machine = registered(sockets: 20)
        machine.heartbeatTick()
        _ = actions(&machine, at: t0)
        let answer = machine.heartbeatAnswered(result(.ok, indexed: 17), now: t0, jitter: 0)
        #expect(answer.drift && !answer.resync)
        guard case .listSet? = actions(&machine, at: t0).actions.first else { Issue.record("no listing"); return }
        let listed = Set((3..<20).map { "s\($0)" } + ["ghost"])
        let (remove, _) = machine.reconcile(listed: listed)
        #expect(remove == ["ghost"])
        _ = machine.removed(true)
        let rewrite = writes(actions(&machine, at: t0).actions)
        #expect(Set(rewrite.flatMap(\.events).map(\.socketID)) == ["s0", "s1", "s2"])
    }

    @Test("no drift is read from a heartbeat sent while a batch was in flight")
    func noDriftWhileWriting() {
        var machine = registered(sockets: 5)
        machine.connected("x", socket())
        let batch = writes(actions(&machine, at: t0).actions)
        #expect(batch.count == 1)
        machine.heartbeatTick()
        let step = actions(&machine, at: t0).actions
        guard case .heartbeat? = step.first else { Issue.record("the heartbeat must not wait for batches: \(step)"); return }
        let answer = machine.heartbeatAnswered(result(.ok, indexed: 5), now: t0, jitter: 0)
        #expect(!answer.drift)
    }

    @Test("every heartbeat answer counts: a `new` arriving while a rewrite runs restarts it")
    func heartbeatDuringRewrite() {
        var machine = registered(sockets: 600)
        machine.heartbeatTick()
        _ = actions(&machine, at: t0)
        machine.heartbeatAnswered(result(.new, indexed: 0), now: t0, jitter: 0)
        let first = writes(actions(&machine, at: t0).actions)
        #expect(first.count == 1)
        _ = machine.batchFinished(first[0].batch, failed: [], now: t0, jitter: 0)
        machine.heartbeatTick()
        guard case .heartbeat? = actions(&machine, at: t0).actions.first else { Issue.record("no heartbeat"); return }
        machine.heartbeatAnswered(result(.new, indexed: 0), now: t0 + .milliseconds(10), jitter: 0)
        #expect(machine.summary.rewriteQueued == 600, "Redis lost the first batch too: all again")
    }

    @Test("`revived` and `replaced` rewrite everything; `ok` with the right count writes nothing")
    func statuses() {
        for (status, rewrites) in [(HeartbeatResult.Status.revived, true), (.replaced, true), (.ok, false)] {
            var machine = registered(sockets: 10)
            machine.heartbeatTick()
            _ = actions(&machine, at: t0)
            let answer = machine.heartbeatAnswered(result(status, indexed: 10), now: t0, jitter: 0)
            #expect(answer.resync == rewrites, "\(status)")
            #expect((machine.summary.rewriteQueued == 10) == rewrites, "\(status)")
        }
    }

    @Test("flush: at once when all is written; after the batch otherwise; failed by a failing heartbeat; refused when stopped")
    func flush() {
        var machine = registered(sockets: 3)
        let v4 = machine.flush(1)
        #expect(v4 == (true, false))
        machine.connected("n", socket())
        let v5 = machine.flush(2)
        #expect(v5 == (false, false))
        let batch = writes(actions(&machine, at: t0).actions)
        machine.connected("later", socket())
        let v6 = machine.settledWaiters()
        #expect(v6.isEmpty)
        _ = machine.batchFinished(batch[0].batch, failed: [], now: t0, jitter: 0)
        let v7 = machine.settledWaiters()
        #expect(v7 == [2], "waits for changes recorded before it, not after")
        let v8 = machine.flush(3)
        #expect(v8 == (false, false))
        machine.heartbeatTick()
        _ = actions(&machine, at: t0)
        let v9 = machine.heartbeatFailed(now: t0, jitter: 0)
        #expect(v9 == [3])
        let v10 = machine.stop()
        #expect(v10.isEmpty)
        let v11 = machine.flush(4)
        #expect(v11 == (false, true))
    }

    @Test("a failed heartbeat goes again after a short growing pause, not a whole interval later")
    func heartbeatRetried() {
        var machine = registered(sockets: 1)
        machine.heartbeatTick()
        _ = actions(&machine, at: t0)
        _ = machine.heartbeatFailed(now: t0, jitter: 1)
        #expect(!machine.healthy)
        let waiting = actions(&machine, at: t0 + .milliseconds(10))
        #expect(waiting.actions.isEmpty && waiting.wake == t0 + .milliseconds(50))
        guard case .heartbeat? = actions(&machine, at: t0 + .milliseconds(50)).actions.first else { Issue.record("no retry"); return }
        _ = machine.heartbeatFailed(now: t0 + .milliseconds(50), jitter: 1)
        #expect(actions(&machine, at: t0 + .milliseconds(60)).wake == t0 + .milliseconds(150))
        guard case .heartbeat? = actions(&machine, at: t0 + .milliseconds(150)).actions.first else { Issue.record("no retry"); return }
        let answer = machine.heartbeatAnswered(result(.ok, indexed: 1), now: t0 + .milliseconds(160), jitter: 0)
        #expect(answer.recovered && machine.healthy)
    }

    @Test("the amortized refresh follows an `ok` heartbeat; missing keys are written again")
    func refresh() {
        var machine = registered(sockets: 600)
        machine.heartbeatTick()
        _ = actions(&machine, at: t0)
        machine.heartbeatAnswered(result(.ok, indexed: 600), now: t0, jitter: 0)
        let step = actions(&machine, at: t0).actions
        guard case .refresh(let slice)? = step.first else { Issue.record("no refresh: \(step)"); return }
        // 2 s of a 600 s socket TTL: 1/300 of the sockets, rounded up.
        #expect(slice.count == 2)
        _ = machine.refreshFinished(missing: [slice[0].socketID])
        #expect(writes(actions(&machine, at: t0).actions).flatMap(\.events).map(\.socketID) == [slice[0].socketID])
    }

    @Test("a graceful shutdown drains what is not written yet")
    func drain() {
        var machine = registered(sockets: 2)
        machine.connected("x", socket())
        let v12 = machine.disconnected("s0")
        #expect(v12)
        let drained = machine.drain()
        #expect(Set(drained.map(\.socketID)) == ["x", "s0"])
        let v13 = machine.drain()
        #expect(v13.isEmpty)
    }
}
