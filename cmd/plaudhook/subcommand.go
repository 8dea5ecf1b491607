package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// subcommand is one of a command's subcommands (`plaudhook token create`): what it does and
// which of the command's flags it takes besides --db.
type subcommand struct {
	name, about string
	flags       []string
}

// commandGroup is a command made of subcommands, whose flags are declared once on one set.
type commandGroup struct {
	name string
	subs []subcommand
}

// usageLine is the first line of the command's help.
func (g commandGroup) usageLine() string {
	names := make([]string, len(g.subs))
	for i, s := range g.subs {
		names[i] = s.name
	}
	return fmt.Sprintf("Usage: plaudhook %s %s [flags]", g.name, strings.Join(names, "|"))
}

// usage is the command's help: one line per subcommand.
func (g commandGroup) usage() string {
	var b strings.Builder
	b.WriteString(g.usageLine() + "\n\n")
	for _, s := range g.subs {
		fmt.Fprintf(&b, "  %-12s %s\n", s.name, s.about)
	}
	fmt.Fprintf(&b, "\nplaudhook %s SUBCOMMAND -h lists a subcommand's flags.\n", g.name)
	return b.String()
}

// pick reads the subcommand from args. "-h" prints the command's help and returns flag.ErrHelp
// (main exits 0 on it); none, or an unknown one, is an error that lists them.
func (g commandGroup) pick(args []string, stderr io.Writer) (subcommand, []string, error) {
	if len(args) == 0 {
		return subcommand{}, nil, errors.New(g.usageLine())
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, g.usage())
		return subcommand{}, nil, flag.ErrHelp
	}
	for _, s := range g.subs {
		if s.name == args[0] {
			return s, args[1:], nil
		}
	}
	return subcommand{}, nil, fmt.Errorf("unknown %s command %q\n\n%s", g.name, args[0], g.usage())
}

// parse parses args into fs for sub: its help lists only the flags sub takes, and a flag of the
// command that sub does not take, or a word that is no flag, is refused rather than silently
// ignored.
func (g commandGroup) parse(fs *flag.FlagSet, sub subcommand, args []string, stderr io.Writer) error {
	takes := func(name string) bool { return name == "db" || slices.Contains(sub.flags, name) }
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: plaudhook %s %s [flags]\n\n%s.\n\n", g.name, sub.name, sub.about)
		own := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
		own.SetOutput(stderr)
		fs.VisitAll(func(f *flag.Flag) {
			if takes(f.Name) {
				own.Var(f.Value, f.Name, f.Usage)
				own.Lookup(f.Name).DefValue = f.DefValue // not a value given before -h
			}
		})
		own.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 { // a word meant as a flag's value: "secret list meetings" for --endpoint
		return fmt.Errorf("%s %s takes flags only, not %q (see plaudhook %s %s -h)",
			g.name, sub.name, fs.Arg(0), g.name, sub.name)
	}
	var wrong []string
	fs.Visit(func(f *flag.Flag) {
		if !takes(f.Name) {
			wrong = append(wrong, "--"+f.Name)
		}
	})
	if len(wrong) > 0 {
		return fmt.Errorf("%s %s does not take %s (see plaudhook %s %s -h)",
			g.name, sub.name, strings.Join(wrong, ", "), g.name, sub.name)
	}
	return nil
}
