/// Uni's version, reported by `uni version`, `/v1/info` and `uni_build_info`.
public enum UniVersion {
    /// The semantic version of this build.
    public static let current = "0.1.0"
}
