import Foundation

/// The first message a chat node sends on a websocket: `{"type":"welcome","socketId","nodeId"}`.
struct Welcome: Decodable, Sendable {
    var type: String
    var socketId: String
    var nodeId: String

    /// Decodes a welcome; `nil` for any other message.
    init?(_ text: String) {
        guard let welcome = try? JSONDecoder().decode(Welcome.self, from: Data(text.utf8)), welcome.type == "welcome" else { return nil }
        self = welcome
    }
}
