import ArgumentParser
import Foundation
import Glibc
import Logging
import ServiceLifecycle
import UnixSignals

/// `chat-load`: many real websockets over chat nodes, with churn.
@main
struct ChatLoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-load",
        abstract: "Open N websockets over chat nodes (round robin), churn them, reconnect on failure, print one line per second.")

    @Argument(help: "Chat node URLs: http://127.0.0.1:8081 (→ ws://…/ws) or ws://host:port/path.")
    var urls: [String]

    @Option(help: "Sockets to keep open.")
    var sockets: Int = 300

    @Option(help: "Sockets closed and reopened per second (each a disconnect and a connect).")
    var churn: Double = 0

    @Option(name: .customLong("churn-for"), help: "Churn only during the first S seconds, then hold the sockets steady.")
    var churnFor: Double?

    @Option(help: "Stop after S seconds (default: run until SIGINT or SIGTERM).")
    var duration: Double?

    @Option(help: "Distinct user ids (user-0 …), given as ?user=.")
    var users: Int = 100

    @Option(help: "Most first connects per second while ramping up.")
    var ramp: Double = 500

    @Option(name: .customLong("log-level"), help: "Log level of the websocket client.")
    var logLevel: String = "warning"

    func validate() throws {
        guard !urls.isEmpty else { throw ValidationError("give at least one chat node URL") }
        for url in urls where LoadOptions.webSocketURL(url) == nil { throw ValidationError("not a websocket or http URL: \(url)") }
        guard sockets >= 1 else { throw ValidationError("--sockets must be at least 1") }
        guard churn >= 0, (churnFor ?? 0) >= 0, (duration ?? 1) > 0, users >= 1, ramp > 0 else {
            throw ValidationError("--churn, --churn-for, --duration, --users and --ramp must be positive")
        }
    }

    func run() async throws {
        var options = LoadOptions()
        options.urls = urls.compactMap(LoadOptions.webSocketURL)
        options.sockets = sockets
        options.churn = churn
        options.churnFor = churnFor
        options.duration = duration
        options.users = users
        options.rampPerSecond = ramp
        Self.raiseOpenFileLimit(atLeast: sockets + 256)
        let level = Logger.Level(rawValue: logLevel) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "chat-load")
        let runner = LoadRunner(options: options, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: runner, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        if !runner.stoppedCleanly { throw ExitCode(1) }
    }

    /// Each socket is a file descriptor: lift the soft limit towards the hard one when it is too low.
    static func raiseOpenFileLimit(atLeast wanted: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(wanted) else { return }
        limit.rlim_cur = min(limit.rlim_max, rlim_t(wanted))
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
