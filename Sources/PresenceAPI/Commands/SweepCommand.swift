import ArgumentParser
import Foundation
import Presence

/// `presence sweep`: one pass for cron.
struct SweepCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Remove what dead nodes left behind (one pass, for cron).")

    @OptionGroup var redisOptions: RedisOptions

    @Option(help: "Only nodes dead for longer than this many seconds (default 0).")
    var grace: Double = 0

    @Flag(name: .customLong("dry-run"), help: "Print what would be removed; change nothing.")
    var dryRun = false

    @Flag(help: "Also SCAN every primary for socket sets of nodes the table no longer lists (costs a pass over every key; for after a failover or a lost table).")
    var orphans = false

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let grace = try RedisOptions.duration(grace, flag: "--grace")
        let configuration = try redisOptions.presenceConfiguration()
        let report: Sweeper.Report
        do {
            report = try await redisOptions.withClient { client in
                try await Sweeper(client: client, configuration: configuration).sweep(grace: grace, dryRun: dryRun, orphans: orphans)
            }
        } catch let error as ValidationError { throw error } catch { throw CommandFailure(error) }
        if json {
            let nodes = report.nodes.map { ["nodeId": $0.nodeID, "incarnation": $0.incarnation, "expiredAt": Timestamp.string($0.expiredAt), "sockets": $0.sockets, "removed": $0.forgotten] as [String: Any] }
            let object: [String: Any] = ["dryRun": report.dryRun, "nodes": nodes, "sockets": report.sockets]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        let verb = dryRun ? "would remove" : "removed"
        if report.nodes.isEmpty { print("no dead node to sweep") }
        for node in report.nodes {
            let note = !dryRun && !node.forgotten ? " (it came back or another sweeper finished it; kept)" : ""
            print("\(verb) node \(node.nodeID) (dead since \(Timestamp.string(node.expiredAt))) and \(node.sockets) sockets\(note)")
        }
        print("\(verb) \(report.nodes.count) nodes, \(report.sockets) sockets")
    }
}
