# embed.awk - a text file as a C string: awk -v name=SYMBOL -f scripts/embed.awk FILE
# The Makefile compiles the admin console's page (retrieval/console.html) in
# this way, so `ctxgate serve` needs no files beside it.
BEGIN {
    printf "/* Generated from %s by scripts/embed.awk; edit that file instead. */\n", ARGV[1]
    printf "extern const char %s[];\nconst char %s[] =\n", name, name
}
{
    gsub(/\\/, "\\\\")
    gsub(/"/, "\\\"")
    printf "    \"%s\\n\"\n", $0
}
END { print "    ;" }
