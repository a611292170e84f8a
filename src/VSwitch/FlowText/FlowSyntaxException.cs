// FlowSyntaxException.cs - the one error the flow text parsers throw: where, and what was expected.
//
// Messages read "origin: line L, column C: expected X, found Y"; the parts are kept separately so
// that callers (the control socket, the state store, tests) can point at the text themselves.
namespace VSwitch.FlowText;

/// <summary>A flow text error: where (origin, line, column) and what was expected there.</summary>
public sealed class FlowSyntaxException : VSwitchException
{
    public FlowSyntaxException(string origin, int line, int column, string detail)
        : base($"{origin}: line {line}, column {column}: {detail}")
    {
        Origin = origin;
        Line = line;
        Column = column;
        Detail = detail;
    }

    /// <summary>The file or source name given to the parser.</summary>
    public string Origin { get; }

    /// <summary>1-based line number.</summary>
    public int Line { get; }

    /// <summary>1-based column of the offending text.</summary>
    public int Column { get; }

    /// <summary>The message without the location prefix.</summary>
    public string Detail { get; }
}
