import Foundation
import Synchronization

/// Whole lines to standard output, written at once (unbuffered), so that a log file or a pipe
/// shows every line as it happens, never two lines interleaved.
enum Console {
    private static let lock = Mutex(())

    static func line(_ text: String) {
        let data = Data((text + "\n").utf8)
        lock.withLock { _ in FileHandle.standardOutput.write(data) }
    }
}
