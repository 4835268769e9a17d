import Foundation
import Glibc

/// A `chat-node` process of the package's own build, for what only a process can do: die by
/// SIGKILL, with no goodbye to the registry.
struct SpawnedNode: Sendable {
    let nodeID: String
    let port: Int
    let process: ChildProcess

    /// Starts `chat-node` against `redisURL`, waits until it answers HTTP and reads alive in the
    /// registry (`isAlive`), runs `body`, then stops it (SIGTERM, SIGKILL after 5 s) if it still runs.
    static func with<T: Sendable>(
        _ nodeID: String, redisURL: String, in directory: TestDirectory, isAlive: @Sendable (String) async throws -> Bool,
        _ body: (SpawnedNode) async throws -> T
    ) async throws -> T {
        let port = try FreePort.next()
        let process = try ChildProcess(
            [try binary(), "--port", String(port), "--node-id", nodeID, "--redis", redisURL, "--log-level", "notice"] + TestTiming.commandLine,
            name: "chat-node \(nodeID)", logPath: directory.file("\(nodeID).log"))
        let node = SpawnedNode(nodeID: nodeID, port: port, process: process)
        do {
            try await waitUntil("chat-node \(nodeID) answering HTTP on port \(port)", within: TestTiming.startup,
                                state: { "\(process.outcome); output:\n\(process.logTail())" }) {
                if process.hasExited { throw ChildProcess.Failure(description: "chat-node \(nodeID) exited (\(process.outcome)):\n\(process.logTail())") }
                return await SendAnswer.answers(port: port)
            }
            try await waitUntil("chat-node \(nodeID) alive in the registry", within: TestTiming.startup) { try await isAlive(nodeID) }
            let result = try await body(node)
            await process.stop()
            return result
        } catch {
            await process.stop()
            throw error
        }
    }

    /// The `chat-node` executable beside the test bundle (`swift build --build-tests` builds both),
    /// or `CHAT_NODE_BIN`.
    static func binary() throws -> String {
        if let path = ProcessInfo.processInfo.environment["CHAT_NODE_BIN"], !path.isEmpty { return path }
        let bundle = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let candidate = URL(fileURLWithPath: bundle).deletingLastPathComponent().appendingPathComponent("chat-node").path
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw ChildProcess.Failure(description: """
                chat-node is not built at \(candidate): build it with the tests \
                (swift build --package-path Examples/ChatNode --build-tests), or set CHAT_NODE_BIN
                """)
        }
        return candidate
    }
}
