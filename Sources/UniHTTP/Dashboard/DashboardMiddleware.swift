import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore
import UniKit

/// Adds the security headers to every dashboard response, errors included.
public struct DashboardHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The policy the pages satisfy: their script and stylesheet are files
    /// of this server, sparklines are inline SVG elements (not `style`), and
    /// nothing may frame them.
    public static var contentSecurityPolicy: String {
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    }

    // HTTPTypes has no constant for it; a literal name always parses.
    static var referrerPolicy: HTTPField.Name? { HTTPField.Name("Referrer-Policy") }

    /// Creates the middleware.
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        response.headers[.xContentTypeOptions] = "nosniff"
        if let referrerPolicy = Self.referrerPolicy { response.headers[referrerPolicy] = "no-referrer" }
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }
}

/// Refuses traversal-like and malformed paths before routing, and turns
/// errors into a JSON body under `/ui/api` (as ``APIErrorMiddleware``, with
/// its statuses) or an HTML error page elsewhere.
///
/// Nothing under `/ui` reads files, so a `..` could do no harm today; it is
/// refused anyway so that no future route has to think about it.
public struct DashboardErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The longest request target accepted, in bytes.
    public static var maximumPathBytes: Int { 1024 }

    let library: MustacheLibrary

    init(library: MustacheLibrary) {
        self.library = library
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        let isAPI = path == "/ui/api" || path.hasPrefix("/ui/api/")
        if isAPI {
            return try await APIErrorMiddleware<Context>().handle(request, context: context) { request, context in
                try Self.checkPath(request)
                return try await next(request, context)
            }
        }
        do {
            try Self.checkPath(request)
            return try await next(request, context)
        } catch let error as UniError {
            return page(status: APIErrorMiddleware<Context>.status(for: error.code), message: error.message)
        } catch let error as HTTPError {
            let message = error.status == .notFound ? "No page at \(path.prefix(200))." : (error.body ?? error.status.reasonPhrase)
            return page(status: error.status, message: message)
        } catch {
            context.logger.error("unexpected dashboard error", metadata: ["error": "\(error)"])
            return page(status: .internalServerError, message: "internal error")
        }
    }

    /// Throws `invalidArgument` for a target with `..`, an encoded dot,
    /// slash, backslash or NUL, a control character, or more than
    /// ``maximumPathBytes`` bytes.
    static func checkPath(_ request: Request) throws {
        let target = request.uri.string
        let lower = target.lowercased()
        let refused = ["..", "%2e", "%2f", "%5c", "%00", "\\", "//"]
        guard target.utf8.count <= maximumPathBytes,
              !target.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }),
              !refused.contains(where: { lower.contains($0) }) else {
            throw UniError.invalid("invalid path: dots, encoded separators, control characters and paths over \(maximumPathBytes) bytes are refused")
        }
    }

    func page(status: HTTPResponse.Status, message: String) -> Response {
        let html = library.render(ErrorPage(title: status.reasonPhrase, status: status.code, message: message), withTemplate: "error") ?? message
        return DashboardRouter.html(html, status: status)
    }
}
