/// A reply from Redis, decoded from RESP2 and detached from hiredis memory.
///
/// Error replies are not values: they arrive as ``RedisError`` with code ``RedisError/Code/server``.
public enum RedisValue: Sendable, Hashable {
    /// A simple string reply such as `OK` or `PONG`.
    case simpleString(String)
    /// A bulk string reply; binary-safe.
    case bulkString([UInt8])
    /// An integer reply.
    case integer(Int)
    /// An array reply (multi-bulk), possibly nested.
    case array([RedisValue])
    /// A null bulk string or null array.
    case null
    /// An error reply nested in an array (as `EXEC` or a script may return); a top-level error
    /// reply is thrown as ``RedisError`` instead.
    case error(String)
}

extension RedisValue {
    /// The reply as UTF-8 text, for simple and bulk strings (invalid UTF-8 is repaired) and integers.
    public var string: String? {
        switch self {
        case .simpleString(let s): return s
        case .bulkString(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .integer(let i): return String(i)
        case .array, .null, .error: return nil
        }
    }

    /// The reply as an integer, for integer replies and strings holding a decimal integer.
    public var int: Int? {
        switch self {
        case .integer(let i): return i
        case .bulkString, .simpleString: return string.flatMap { Int($0) }
        case .array, .null, .error: return nil
        }
    }

    /// The elements of an array reply; `nil` for anything else.
    public var array: [RedisValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    /// Whether this is a null reply.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// A flat array of field/value pairs (as HGETALL returns) as a dictionary.
    public var fieldMap: [String: String] {
        guard let values = array else { return [:] }
        var result: [String: String] = [:]
        result.reserveCapacity(values.count / 2)
        var index = 0
        while index + 1 < values.count {
            if let field = values[index].string, let value = values[index + 1].string {
                result[field] = value
            }
            index += 2
        }
        return result
    }
}
