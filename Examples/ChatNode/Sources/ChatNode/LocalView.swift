/// `GET /local`: what this process holds, as it sees it (not the registry).
struct LocalView: Encodable, Sendable {
    let nodeId: String
    let incarnation: String
    let address: String
    let sockets: Int
    let socketIds: [String]
    /// Contacts' online/offline notices: `live` (every change since is told), `starting`, or `off`
    /// (the registry's change stream is off).
    let contactNotices: String
}
