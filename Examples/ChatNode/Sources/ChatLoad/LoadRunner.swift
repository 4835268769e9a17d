import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOPosix
import NIOWebSocket
import ServiceLifecycle
import Synchronization

/// Keeps ``LoadOptions/sockets`` real websockets open over the nodes (round robin), closes and
/// reopens ``LoadOptions/churn`` of them per second, reconnects any that fail or drop, and prints
/// one line per second. Every socket is a task on one NIO event loop group, not a thread.
///
/// A `Service`: on graceful shutdown (SIGINT, SIGTERM) or when the duration is reached it stops
/// reconnecting, closes every socket with a close handshake and returns.
final class LoadRunner: Service, Sendable {
    let options: LoadOptions
    let stats = LoadStats()
    let open = OpenSockets()
    private let stopping = Atomic<Bool>(false)
    private let roundRobin = Atomic<Int>(0)
    private let closedInTime = Atomic<Bool>(true)
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let clock = ContinuousClock()

    /// How long sockets may take to close once the run stops.
    static let closeDeadline: Duration = .seconds(10)

    /// Whether every socket closed within ``closeDeadline`` after the stop.
    var stoppedCleanly: Bool { closedInTime.load(ordering: .relaxed) }

    init(options: LoadOptions, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        self.options = options
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    private var isStopping: Bool { stopping.load(ordering: .relaxed) }

    private struct CloseTimeout: Error {}

    func run() async throws {
        let start = clock.now
        Console.line("chat-load: \(options.sockets) sockets over \(options.urls.joined(separator: " ")), churn \(options.churn)/s"
            + (options.churnFor.map { " for \($0) s" } ?? "") + (options.duration.map { ", for \($0) s" } ?? ", until SIGINT/SIGTERM"))
        await withGracefulShutdownHandler {
            do {
                try await withThrowingDiscardingTaskGroup { group in
                    for slot in 0..<options.sockets {
                        group.addTask { await self.runSlot(slot) }
                    }
                    group.addTask { await self.report(from: start) }
                    group.addTask { await self.churn(from: start) }
                    if let duration = options.duration {
                        group.addTask {
                            await self.sleepUnlessStopping(until: start + .milliseconds(Int(duration * 1000)))
                            self.stop(reason: "duration reached")
                        }
                    }
                    group.addTask { try await self.closeAllOnStop() }
                }
            } catch {
                closedInTime.store(false, ordering: .relaxed)
                Console.line("chat-load: \(open.count) sockets did not close within \(Self.closeDeadline); abandoned")
            }
        } onGracefulShutdown: {
            self.stop(reason: "signal")
        }
        let totals = stats.snapshot
        let elapsed = (clock.now - start).seconds
        Console.line(String(format: "chat-load: done after %.1f s: %@; totals: %d connects, %d disconnects, %d errors, %d dropped, %d messages",
                            elapsed, stoppedCleanly ? "every socket closed cleanly" : "some sockets did not close",
                            totals.connects, totals.disconnects, totals.errors, totals.dropped, totals.messages))
    }

    /// Stops reconnecting and churning; ``closeAllOnStop()`` closes what is open. Idempotent.
    func stop(reason: String) {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        Console.line("chat-load: stopping (\(reason)): closing \(open.count) sockets")
    }

    /// Waits for the stop, closes every open socket, then fails if some are still open at the deadline.
    private func closeAllOnStop() async throws {
        while !isStopping { try? await Task.sleep(for: .milliseconds(50)) }
        await withDiscardingTaskGroup { group in
            for writer in open.allWriters {
                group.addTask { try? await writer.close(.normalClosure, reason: "load client stopping") }
            }
        }
        let deadline = clock.now + Self.closeDeadline
        while open.count > 0 {
            if clock.now >= deadline { throw CloseTimeout() }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    // MARK: Sockets

    private enum Outcome {
        /// Opened, then closed with a handshake (churn, stop, or the server closing).
        case closed
        /// Opened, then lost without a close handshake (the node died).
        case dropped
        /// Never opened.
        case failed(any Error)
    }

    /// One slot: keeps one socket open, reconnecting (to the next node in turn) after every close
    /// or failure, with backoff after failures.
    private func runSlot(_ slot: Int) async {
        await sleepUnlessStopping(until: clock.now + .milliseconds(Int(Double(slot) / options.rampPerSecond * 1000)))
        var failures = 0
        while !isStopping {
            let target = roundRobin.wrappingAdd(1, ordering: .relaxed).oldValue % options.urls.count
            switch await connect(slot: slot, url: options.urls[target]) {
            case .closed:
                failures = 0
            case .dropped:
                failures = 0
                stats.dropped.add(1, ordering: .relaxed)
            case .failed(let error):
                failures += 1
                stats.errors.add(1, ordering: .relaxed)
                logger.debug("connect failed", metadata: ["url": "\(options.urls[target])", "error": "\(error)"])
                // 50 ms, 100 ms, … 2 s, with jitter: a dead node is skipped, not hammered.
                let backoff = min(2000, 25 << min(failures, 7))
                await sleepUnlessStopping(until: clock.now + .milliseconds(Int.random(in: backoff / 2...backoff)))
            }
        }
    }

    private final class Attempt: Sendable {
        let upgraded = Atomic<Bool>(false)
    }

    private func connect(slot: Int, url: String) async -> Outcome {
        let attempt = Attempt()
        let user = "user-\(slot % max(options.users, 1))"
        let fullURL = url + (url.contains("?") ? "&" : "?") + "user=" + user
        let label = Self.hostAndPort(url)
        do {
            let closeFrame = try await WebSocketClient.connect(
                url: fullURL, configuration: .init(maxFrameSize: 1 << 16, closeTimeout: .seconds(5)),
                eventLoopGroup: eventLoopGroup, logger: logger
            ) { inbound, outbound, _ in
                attempt.upgraded.store(true, ordering: .relaxed)
                self.stats.connects.add(1, ordering: .relaxed)
                self.open.opened(slot: slot, writer: outbound, url: label)
                defer {
                    self.open.closed(slot: slot)
                    self.stats.disconnects.add(1, ordering: .relaxed)
                }
                if self.isStopping { return }  // the stop's snapshot of open sockets may have missed this one
                var socketID: String?
                var node = label
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message else { continue }
                    if socketID == nil, let welcome = Welcome(text) {
                        socketID = welcome.socketId
                        node = welcome.nodeId
                        self.open.welcomed(slot: slot, socketID: welcome.socketId, node: welcome.nodeId, url: label)
                        continue
                    }
                    self.stats.messages.add(1, ordering: .relaxed)
                    Console.line("chat-load: message for socket \(socketID ?? "?") on \(node): \(text)")
                }
            }
            return closeFrame == nil ? .dropped : .closed
        } catch {
            return attempt.upgraded.load(ordering: .relaxed) ? .dropped : .failed(error)
        }
    }

    static func hostAndPort(_ url: String) -> String {
        var rest = Substring(url)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        return String(rest.prefix { $0 != "/" && $0 != "?" })
    }

    // MARK: Churn and report

    /// Closes random open sockets at the churn rate (their slots reopen them at once).
    private func churn(from start: ContinuousClock.Instant) async {
        guard options.churn > 0 else { return }
        var budget = 0.0
        var last = clock.now
        var announced = false
        while !isStopping {
            try? await Task.sleep(for: .milliseconds(100))
            let now = clock.now
            defer { last = now }
            if let churnFor = options.churnFor, now - start >= .milliseconds(Int(churnFor * 1000)) {
                if !announced { Console.line("chat-load: churn stopped after \(churnFor) s; holding \(options.sockets) sockets") }
                announced = true
                continue
            }
            let step = now - last
            budget += options.churn * step.seconds
            let count = Int(budget)
            if count == 0 { continue }
            budget -= Double(count)
            await withDiscardingTaskGroup { group in
                for writer in open.randomWriters(count) {
                    group.addTask { try? await writer.close(.normalClosure, reason: "churn") }
                }
            }
        }
    }

    /// One line per second: open sockets (per node), events per second, errors.
    private func report(from start: ContinuousClock.Instant) async {
        var previous = stats.snapshot
        var tick = 1
        while !isStopping {
            await sleepUnlessStopping(until: start + .seconds(tick))
            if isStopping { return }
            let now = stats.snapshot
            let delta = now.minus(previous)
            previous = now
            let nodes = open.perNode.map { "\($0.node) \($0.sockets)" }.joined(separator: ", ")
            Console.line(String(format: "chat-load: %4ds open %d/%d (%@) | events/s %d (%d connects, %d disconnects) | errors %d, dropped %d, messages %d",
                                tick, open.count, options.sockets, nodes, delta.connects + delta.disconnects, delta.connects, delta.disconnects,
                                now.errors, now.dropped, now.messages))
            tick += 1
        }
    }

    /// Sleeps until `deadline`, waking early (within 50 ms) when the run stops.
    private func sleepUnlessStopping(until deadline: ContinuousClock.Instant) async {
        while !isStopping, clock.now < deadline {
            try? await Task.sleep(until: min(deadline, clock.now + .milliseconds(50)), clock: clock)
        }
    }
}
