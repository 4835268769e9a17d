@testable import Presence
import Testing

/// The I/O loop's decisions, without a server or a clock.
@Suite("Redis connection state machine: connects, backoff, broken reads, timeouts, READONLY, NOSCRIPT")
struct RedisConnectionStateMachineTests {
    let t0 = ContinuousClock.now

    func machine() throws -> RedisConnectionStateMachine {
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:6390")
        configuration.minimumBackoff = .milliseconds(50)
        configuration.maximumBackoff = .milliseconds(300)
        return RedisConnectionStateMachine(configuration: configuration)
    }

    func isConnect(_ action: RedisConnectionStateMachine.ConnectAction) -> Bool {
        if case .connect = action { return true }
        return false
    }

    func failFastCode(_ action: RedisConnectionStateMachine.ConnectAction) -> RedisError.Code? {
        if case .failFast(let error) = action { return error.code }
        return nil
    }

    @Test("the first pipeline connects; a live connection is reused")
    func connectsOnce() throws {
        var machine = try machine()
        #expect(isConnect(machine.connectionNeeded(now: t0)))
        let r1 = machine.connectSucceeded()
        #expect(!r1, "no failure came before")
        guard case .useConnection = machine.connectionNeeded(now: t0) else { Issue.record("not reused"); return }
    }

    @Test("failed connects back off exponentially up to the maximum; calls meanwhile fail fast, naming the cause")
    func backoff() throws {
        var machine = try machine()
        let refused = RedisError(.connectionFailed, "cannot connect: Connection refused")
        let r2 = machine.connectFailed(refused, now: t0)
        #expect(r2 == .milliseconds(50))
        #expect(failFastCode(machine.connectionNeeded(now: t0 + .milliseconds(49))) == .unavailable)
        #expect(isConnect(machine.connectionNeeded(now: t0 + .milliseconds(50))))
        let r3 = machine.connectFailed(refused, now: t0)
        #expect(r3 == .milliseconds(100))
        let r4 = machine.connectFailed(refused, now: t0)
        #expect(r4 == .milliseconds(200))
        let r5 = machine.connectFailed(refused, now: t0)
        #expect(r5 == .milliseconds(300))
        let r6 = machine.connectFailed(refused, now: t0)
        #expect(r6 == .milliseconds(300))
        guard case .failFast(let error) = machine.connectionNeeded(now: t0 + .milliseconds(10)) else { Issue.record("no fail-fast"); return }
        #expect(error.message.contains("Connection refused"))
        let r7 = machine.connectSucceeded()
        #expect(r7, "a restore after failures is reported")
        let r8 = machine.connectSucceeded()
        #expect(!r8)
    }

    @Test("a replica found on connect fails fast as a replica, with the primary it names")
    func replicaOnConnect() throws {
        var machine = try machine()
        machine.connectFailed(RedisError(.replica, "is a replica", primary: "127.0.0.1:7000"), now: t0)
        guard case .failFast(let error) = machine.connectionNeeded(now: t0) else { Issue.record("no fail-fast"); return }
        #expect(error.code == .replica && error.primary == "127.0.0.1:7000")
    }

    @Test("a broken read or a timeout drops the connection; the next pipeline reconnects at once, without backoff")
    func brokenRead() throws {
        for broken in [RedisError(.connectionLost, "connection lost"), RedisError(.timeout, "no reply within the command timeout")] {
            var machine = try machine()
            _ = machine.connectSucceeded()
            let replies: [[Result<RedisValue, RedisError>]] = [[.success(.integer(1)), .failure(broken)], [.failure(broken)]]
            let verdict = machine.exchangeFinished(replies, transactions: [false, false], broken: broken)
            #expect(verdict.dropConnection && !verdict.demoted && verdict.missingScripts.isEmpty)
            #expect(isConnect(machine.connectionNeeded(now: t0)), "\(broken.code)")
        }
    }

    @Test("READONLY: the server became a replica; the connection goes and callers see a replica error")
    func readOnly() throws {
        var machine = try machine()
        _ = machine.connectSucceeded()
        let refusal = RedisError(.server, "READONLY You can't write against a read only replica.")
        let verdict = machine.exchangeFinished([[.success(.null), .failure(refusal)]], transactions: [false], broken: nil)
        #expect(verdict.dropConnection && verdict.demoted)
        #expect(isConnect(machine.connectionNeeded(now: t0)))
        guard case .failure(let mapped) = RedisConnectionStateMachine.callerResult(.failure(refusal)) else { Issue.record("not a failure"); return }
        #expect(mapped.code == .replica)
        let other = RedisError(.server, "WRONGTYPE Operation against a key holding the wrong kind of value")
        guard case .failure(let kept) = RedisConnectionStateMachine.callerResult(.failure(other)) else { Issue.record("not a failure"); return }
        #expect(kept.code == .server && kept.message == other.message)
    }

    @Test("NOSCRIPT: those calls are retried after loading the scripts, except inside a transaction; the connection stays")
    func noScript() throws {
        var machine = try machine()
        _ = machine.connectSucceeded()
        let missing = RedisError(.server, "NOSCRIPT No matching script. Please use EVAL.")
        let replies: [[Result<RedisValue, RedisError>]] = [
            [.success(.integer(1)), .failure(missing)],
            [.failure(missing)],
            [.failure(missing), .success(.null)],
        ]
        let verdict = machine.exchangeFinished(replies, transactions: [false, true, false], broken: nil)
        #expect(!verdict.dropConnection)
        #expect(verdict.missingScripts == [.init(request: 0, command: 1), .init(request: 2, command: 0)])
        guard case .useConnection = machine.connectionNeeded(now: t0) else { Issue.record("connection dropped"); return }
    }

    @Test("an error reply is the caller's business: it neither drops the connection nor backs off")
    func errorReply() throws {
        var machine = try machine()
        _ = machine.connectSucceeded()
        let verdict = machine.exchangeFinished([[.failure(RedisError(.server, "ERR unknown command"))]], transactions: [false], broken: nil)
        #expect(!verdict.dropConnection && verdict.missingScripts.isEmpty)
        guard case .useConnection = machine.connectionNeeded(now: t0) else { Issue.record("connection dropped"); return }
    }
}
