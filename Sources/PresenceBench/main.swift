// presence-bench: measurements outside the test suite.
//   presence-bench core REDIS_URL [EVENTS] [USERS]
//   presence-bench soak REDIS_URL [SECONDS] [NODES] [SOCKETS_PER_NODE] [EVENTS_PER_SECOND]
import Foundation

/// Writes a line unbuffered, so progress shows when piped and survives a crash.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

let arguments = Array(CommandLine.arguments.dropFirst())
do {
    switch arguments.first {
    case "core" where arguments.count >= 2: try await coreBenchmark(Array(arguments.dropFirst()))
    case "soak" where arguments.count >= 2: try await soak(Array(arguments.dropFirst()))
    default:
        say("usage: presence-bench core REDIS_URL [EVENTS] [USERS] | soak REDIS_URL [SECONDS] [NODES] [SOCKETS] [EVENTS_PER_SECOND]")
        exit(2)
    }
} catch {
    say("presence-bench: \(error)")
    exit(1)
}

