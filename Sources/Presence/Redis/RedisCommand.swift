/// One Redis command as binary-safe arguments, sent with hiredis' argv API.
///
/// Arguments are stored back to back in one buffer with their lengths, so building a command costs
/// two allocations whatever its size.
public struct RedisCommand: Sendable, Hashable {
    @usableFromInline var bytes: [UInt8]
    @usableFromInline var lengths: [Int]

    /// Creates a command from its name and arguments, e.g. `RedisCommand("HGET", key, field)`.
    public init(_ name: String, _ arguments: String...) {
        self.init([name] + arguments)
    }

    /// Creates a command from text arguments; the first is the command name.
    public init(_ arguments: [String]) {
        bytes = []
        lengths = []
        lengths.reserveCapacity(arguments.count)
        for argument in arguments { append(argument) }
    }

    /// Appends a text argument (UTF-8).
    @inlinable
    public mutating func append(_ argument: String) {
        let before = bytes.count
        bytes.append(contentsOf: argument.utf8)
        lengths.append(bytes.count - before)
    }

    /// Appends a decimal integer argument.
    @inlinable
    public mutating func append(_ argument: Int) {
        append(String(argument))
    }

    /// Appends a binary argument.
    @inlinable
    public mutating func append(bytes argument: some Collection<UInt8>) {
        bytes.append(contentsOf: argument)
        lengths.append(argument.count)
    }

    /// Appends several text arguments.
    @inlinable
    public mutating func append(contentsOf arguments: some Sequence<String>) {
        for argument in arguments { append(argument) }
    }

    /// The number of arguments, the name included.
    public var count: Int { lengths.count }

    /// The arguments as text (invalid UTF-8 repaired); for logs and tests.
    public var arguments: [String] {
        var result: [String] = []
        var offset = 0
        for length in lengths {
            result.append(String(decoding: bytes[offset..<offset + length], as: UTF8.self))
            offset += length
        }
        return result
    }

    /// The command name in upper case.
    public var name: String { arguments.first?.uppercased() ?? "" }

    /// Calls `body` with argv pointers and lengths valid for the duration of the call.
    func withArgv<R>(_ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R) -> R {
        bytes.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!)
            return withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: lengths.count) { argv in
                var offset = 0
                for (index, length) in lengths.enumerated() {
                    argv[index] = (base + offset).assumingMemoryBound(to: CChar.self)
                    offset += length
                }
                return lengths.withUnsafeBufferPointer { lengthBuffer in
                    body(Int32(lengths.count), argv.baseAddress!, lengthBuffer.baseAddress!)
                }
            }
        }
    }
}
