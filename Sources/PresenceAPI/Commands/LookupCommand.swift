import ArgumentParser
import Foundation
import Presence

/// `presence lookup SOCKET_ID`: where a socket lives.
struct LookupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lookup", abstract: "Is this socket alive, and on which node? Exit 1 when it is not.")

    @OptionGroup var redisOptions: RedisOptions

    @Argument(help: "The socket id.")
    var socketID: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        do { try PresenceID.validate(socketID, field: "socket id") } catch { throw ValidationError(error.message) }
        let configuration = try redisOptions.presenceConfiguration()
        let socket: PresenceSocket?
        do {
            socket = try await redisOptions.withClient { try await PresenceRegistry(client: $0, configuration: configuration).socket(socketID) }
        } catch let error as ValidationError { throw error } catch { throw CommandFailure(error) }
        if json {
            var object: [String: Any] = ["socketId": socketID, "alive": socket != nil]
            if let socket {
                object["nodeId"] = socket.nodeID
                object["nodeAddress"] = socket.nodeAddress
                object["userId"] = socket.userID ?? NSNull()
                object["connectedAt"] = Timestamp.string(socket.connectedAt)
                object["meta"] = socket.meta
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        } else if let socket {
            print(Table.render(header: ["SOCKET", "NODE", "ADDRESS", "USER", "CONNECTED AT"],
                               rows: [[socketID, socket.nodeID, socket.nodeAddress, socket.userID ?? "-", Timestamp.string(socket.connectedAt)]]))
        } else {
            print("socket \(socketID) is not alive (unknown, disconnected, or its node is dead)")
        }
        if socket == nil { throw ExitCode(1) }
    }
}
