import Foundation
import Hummingbird

/// The request context of every route: Hummingbird's basic context, with JSON responses that keep
/// `/` as it is (addresses such as `http://10.0.0.5:3000` read as written).
struct AppRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage

    init(source: Source) {
        coreContext = .init(source: source)
    }

    var responseEncoder: JSONEncoder { Self.encoder }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        return encoder
    }()
}
