// FlowLine.cs - one line of flow text as the parsers walk it: separators, tokens and errors.
//
// The match parser and the action parser both read the line as a span with integer positions (no
// per-token strings); this holds the line, knows what separates items (',', ' ' and '\t') and
// turns a position into a FlowSyntaxException with its 1-based column.
using System.Diagnostics.CodeAnalysis;

namespace VSwitch.FlowText;

/// <summary>A line of flow text with its origin and line number, for positions and errors.</summary>
internal readonly ref struct FlowLine
{
    private readonly string _origin;
    private readonly int _lineNo;

    public FlowLine(ReadOnlySpan<char> text, string origin, int lineNo, IReadOnlyDictionary<string, int>? ports = null)
    {
        Text = text;
        _origin = origin;
        _lineNo = lineNo;
        Ports = ports;
    }

    /// <summary>Port names the line may use where a port number goes (name -> OpenFlow number), or null.</summary>
    public IReadOnlyDictionary<string, int>? Ports { get; }

    /// <summary>OpenFlow's LOCAL port (OFPP_LOCAL). This switch has no local port: output to it sends nothing, in_port=LOCAL matches nothing.</summary>
    public const int OfPortLocal = 0xFFFE;

    /// <summary>The OpenFlow number of port <paramref name="name"/> ("LOCAL" is <see cref="OfPortLocal"/>), when the line has port names and it is one.</summary>
    public bool TryPortName(ReadOnlySpan<char> name, out int ofPort)
    {
        if (name.Equals("LOCAL", StringComparison.OrdinalIgnoreCase))
        {
            ofPort = OfPortLocal; // OpenFlow's reserved LOCAL port: no port of this switch has it
            return true;
        }

        ofPort = 0;
        return Ports != null && !name.IsEmpty && !char.IsAsciiDigit(name[0]) && Ports.TryGetValue(name.ToString(), out ofPort);
    }

    /// <summary>For messages: " or a port name (a, b, ...)" when the line has port names.</summary>
    public string PortNamesHint => Ports is { Count: > 0 } p
        ? $" or a port name ({string.Join(", ", p.Keys.Order(StringComparer.Ordinal).Take(8))}{(p.Count > 8 ? ", ..." : "")})"
        : "";

    /// <summary>The line, without a trailing '\r'.</summary>
    public ReadOnlySpan<char> Text { get; }

    /// <summary>Throws the error for the text at <paramref name="index"/> (0-based).</summary>
    [DoesNotReturn]
    public void Fail(int index, string detail) => throw new FlowSyntaxException(_origin, _lineNo, index + 1, detail);

    /// <summary>As <see cref="Fail(int, string)"/>, in an expression.</summary>
    public T Fail<T>(int index, string detail) => throw new FlowSyntaxException(_origin, _lineNo, index + 1, detail);

    public static bool IsSep(char c) => c is ',' or ' ' or '\t';

    /// <summary>The first position at or after <paramref name="pos"/> that is not a separator.</summary>
    public int SkipSeps(int pos)
    {
        var s = Text;
        while (pos < s.Length && IsSep(s[pos]))
        {
            pos++;
        }

        return pos;
    }

    /// <summary>The first separator (or the end of the line) at or after <paramref name="pos"/>.</summary>
    public int TokenEnd(int pos)
    {
        var s = Text;
        while (pos < s.Length && !IsSep(s[pos]))
        {
            pos++;
        }

        return pos;
    }

    /// <summary>The token at <paramref name="pos"/> quoted for a "found ..." message.</summary>
    public string FoundAt(int pos) => Found(Text[pos..TokenEnd(pos)]);

    /// <summary>Text quoted for a "found ..." message ("nothing" when empty).</summary>
    public static string Found(ReadOnlySpan<char> s) => s.IsEmpty ? "nothing" : "'" + s.ToString() + "'";
}
