import Foundation

/// A temporary folder for one test's logs and Redis files, removed when the test ends.
struct TestDirectory: Sendable {
    let path: String

    /// Runs `body` with a new folder under the system's temporary directory, then removes it.
    static func with<T: Sendable>(_ body: (TestDirectory) async throws -> T) async throws -> T {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("chat-node-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try await body(TestDirectory(path: path))
    }

    /// The path of `name` in the folder.
    func file(_ name: String) -> String { path + "/" + name }
}
