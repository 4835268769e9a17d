import ArgumentParser
import Foundation
import Presence

/// `presence nodes`: the node listing.
struct NodesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nodes", abstract: "List nodes, alive and dead.")

    @OptionGroup var redisOptions: RedisOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let configuration = try redisOptions.presenceConfiguration()
        let nodes: [PresenceNodeInfo]
        do {
            nodes = try await redisOptions.withClient { try await PresenceRegistry(client: $0, configuration: configuration).nodes() }
        } catch let error as ValidationError { throw error } catch { throw CommandFailure(error) }
        if json {
            let list = nodes.map {
                ["nodeId": $0.nodeID, "address": $0.address, "alive": $0.alive, "incarnation": $0.incarnation,
                 "startedAt": Timestamp.string($0.startedAt), "lastHeartbeatAt": Timestamp.string($0.lastHeartbeatAt),
                 "socketCount": $0.socketCount] as [String: Any]
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: ["nodes": list], options: [.sortedKeys]), as: UTF8.self))
            return
        }
        let rows = nodes.map { [$0.nodeID, $0.alive ? "alive" : "dead", String($0.socketCount), $0.address, Timestamp.string($0.lastHeartbeatAt)] }
        print(Table.render(header: ["NODE", "STATE", "SOCKETS", "ADDRESS", "LAST HEARTBEAT"], rows: rows))
    }
}
