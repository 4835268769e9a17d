import ArgumentParser
import Foundation
import Presence

/// `presence lookup SOCKET_ID`: where a socket lives, or when and why it went (its tombstone, kept
/// `--socket-history-retention` with the change stream on).
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
        let state: SocketState
        do {
            state = try await redisOptions.withClient { try await PresenceRegistry(client: $0, configuration: configuration).lookup([socketID])[0] }
        } catch let error as ValidationError { throw error } catch { throw CommandFailure(error) }
        let socket = state.socket
        if json {
            var object: [String: Any] = ["socketId": socketID, "alive": socket != nil]
            if let socket {
                object["nodeId"] = socket.nodeID
                object["nodeAddress"] = socket.nodeAddress
                object["userId"] = socket.userID ?? NSNull()
                object["connectedAt"] = Timestamp.string(socket.connectedAt)
                object["meta"] = socket.meta
            } else if let departure = state.departure {
                object["disconnectedAt"] = Timestamp.string(departure.disconnectedAt)
                object["reason"] = departure.reason.rawValue
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        } else if let socket {
            print(Table.render(header: ["SOCKET", "NODE", "ADDRESS", "USER", "CONNECTED AT"],
                               rows: [[socketID, socket.nodeID, socket.nodeAddress, socket.userID ?? "-", Timestamp.string(socket.connectedAt)]]))
        } else if let departure = state.departure {
            print("socket \(socketID) is not alive: it went at \(Timestamp.string(departure.disconnectedAt)) (\(departure.reason.rawValue))")
        } else {
            print("socket \(socketID) is not alive (unknown, disconnected, or its node is dead)")
        }
        if socket == nil { throw ExitCode(1) }
    }
}
