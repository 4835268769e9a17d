/// The rules for ids (node, socket, user, incarnation) and other short text the registry stores.
public enum PresenceID {
    /// Longest id, in UTF-8 bytes.
    public static let maximumLength = 256

    /// A fresh incarnation: 64 random bits in base 36 (at most 13 characters). It only has to differ
    /// between the processes of one node id, and it is stored with every socket and user entry,
    /// so it is kept short.
    public static func newIncarnation() -> String {
        String(UInt64.random(in: .min ... .max), radix: 36)
    }

    /// Checks an id: 1–256 bytes of UTF-8 with no control, format or separator characters, no
    /// unassigned, private-use or surrogate code points, and no `%`. Spaces are allowed.
    ///
    /// `%` is refused because ids travel in URL paths percent-encoded: with no `%` in any id, a
    /// client that puts an id into a path unencoded (or encoded once more) can never be read as
    /// naming another id.
    /// - Parameter field: the name used in the error message (`"socketId"`).
    /// - Throws: ``PresenceError`` with code ``PresenceError/Code/invalidID``.
    public static func validate(_ id: String, field: String) throws(PresenceError) {
        let length = id.utf8.count
        guard length > 0 else { throw PresenceError(.invalidID, "\(field) is empty") }
        guard length <= maximumLength else {
            throw PresenceError(.invalidID, "\(field) is \(length) bytes; at most \(maximumLength) are allowed")
        }
        if let bad = firstForbiddenScalar(id) {
            throw PresenceError(.invalidID, "\(field) contains the forbidden character U+\(String(bad.value, radix: 16, uppercase: true).leftPadded(4))")
        }
        if id.utf8.contains(percent) {
            throw PresenceError(.invalidID, "\(field) contains '%', which ids may not hold")
        }
    }

    /// Checks raw bytes (a URL path segment, say) and returns them as an id.
    /// - Throws: ``PresenceError`` with code ``PresenceError/Code/invalidID`` for invalid UTF-8 too.
    public static func validated(bytes: some Collection<UInt8>, field: String) throws(PresenceError) -> String {
        guard let id = String(validating: bytes, as: UTF8.self) else {
            throw PresenceError(.invalidID, "\(field) is not valid UTF-8")
        }
        try validate(id, field: field)
        return id
    }

    /// Whether `id` follows the rules.
    public static func isValid(_ id: String) -> Bool {
        (1...maximumLength).contains(id.utf8.count) && firstForbiddenScalar(id) == nil && !id.utf8.contains(percent)
    }

    private static let percent = UInt8(ascii: "%")

    /// The first character that neither ids nor meta may hold (`%` aside, which meta may hold).
    static func firstForbiddenScalar(_ text: String) -> Unicode.Scalar? {
        for scalar in text.unicodeScalars {
            if scalar.isASCII {
                if scalar.value < 0x20 || scalar.value == 0x7F { return scalar }
                continue
            }
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .unassigned, .privateUse:
                return scalar
            default:
                continue
            }
        }
        return nil
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
