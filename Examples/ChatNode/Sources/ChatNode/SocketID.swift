/// Ids for accepted websockets.
enum SocketID {
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// A random 20-character id (base 62, about 119 bits): unique across the cluster without
    /// coordination, like Socket.IO's ids, and safe in a URL path as it is.
    static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<20).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] }
        return String(decoding: bytes, as: UTF8.self)
    }
}
