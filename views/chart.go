package views

import (
	"strconv"
	"strings"
)

// Chart is a stacked bar chart drawn as server-side SVG: no script, colours from CSS classes
// (so dark mode applies), a <title> on every bar for hovering, and the same numbers as a table
// for screen readers.
type Chart struct {
	Title  string
	Labels []string // one per bar, e.g. "14:00"
	Series []Series // stacked bottom to top
}

// Series is one stacked layer of a chart.
type Series struct {
	Name   string
	Values []int // one per bar
}

// Chart geometry, in SVG user units; the SVG scales to its box.
const (
	chartW      = 720
	chartH      = 180
	chartLeft   = 40 // room for the y-axis labels
	chartBottom = 20 // room for the x-axis labels
	chartTop    = 8
)

// chartRect is one drawn segment of a bar.
type chartRect struct {
	X, Y, W, H string
	Class      string
	Title      string
}

// chartTick is one axis label.
type chartTick struct {
	X, Y, Text string
}

// chartMax is the largest stacked bar.
func (c Chart) chartMax() int {
	m := 0
	for i := range c.Labels {
		sum := 0
		for _, s := range c.Series {
			if i < len(s.Values) {
				sum += s.Values[i]
			}
		}
		m = max(m, sum)
	}
	return m
}

// Total is the sum of every value of the chart.
func (c Chart) Total() int {
	t := 0
	for _, s := range c.Series {
		for _, v := range s.Values {
			t += v
		}
	}
	return t
}

// rects lays out every non-empty segment.
func (c Chart) rects() []chartRect {
	n := len(c.Labels)
	top := c.chartMax()
	if n == 0 || top == 0 {
		return nil
	}
	plotW := float64(chartW - chartLeft)
	plotH := float64(chartH - chartBottom - chartTop)
	slot := plotW / float64(n)
	barW := max(slot*0.8, 1)
	var out []chartRect
	for i, label := range c.Labels {
		base := float64(chartH - chartBottom)
		x := float64(chartLeft) + slot*float64(i) + (slot-barW)/2
		for k, s := range c.Series {
			if i >= len(s.Values) || s.Values[i] == 0 {
				continue
			}
			h := plotH * float64(s.Values[i]) / float64(top)
			base -= h
			out = append(out, chartRect{X: num(x), Y: num(base), W: num(barW), H: num(h),
				Class: "s" + strconv.Itoa(k%8),
				Title: label + " · " + s.Name + ": " + strconv.Itoa(s.Values[i])})
		}
	}
	return out
}

// xTicks labels about six bars evenly.
func (c Chart) xTicks() []chartTick {
	n := len(c.Labels)
	if n == 0 {
		return nil
	}
	step := max(1, n/6)
	slot := float64(chartW-chartLeft) / float64(n)
	var out []chartTick
	for i := 0; i < n; i += step {
		out = append(out, chartTick{X: num(float64(chartLeft) + slot*(float64(i)+0.5)),
			Y: strconv.Itoa(chartH - 5), Text: c.Labels[i]})
	}
	return out
}

// yTicks labels zero and the top of the scale.
func (c Chart) yTicks() []chartTick {
	return []chartTick{
		{X: strconv.Itoa(chartLeft - 4), Y: strconv.Itoa(chartH - chartBottom), Text: "0"},
		{X: strconv.Itoa(chartLeft - 4), Y: strconv.Itoa(chartTop + 8), Text: strconv.Itoa(c.chartMax())},
	}
}

// summary describes the chart in one sentence for assistive technology.
func (c Chart) summary() string {
	names := make([]string, len(c.Series))
	for i, s := range c.Series {
		names[i] = s.Name
	}
	return c.Title + ": " + strconv.Itoa(c.Total()) + " in " + strconv.Itoa(len(c.Labels)) +
		" bars (" + strings.Join(names, ", ") + "); the table below has every number."
}

// seriesClass is the colour class of series k, shared by bars and legend.
func seriesClass(k int) string { return "s" + strconv.Itoa(k%8) }

func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

func chartViewBox() string {
	return "0 0 " + strconv.Itoa(chartW) + " " + strconv.Itoa(chartH)
}

func axisY() string { return strconv.Itoa(chartH - chartBottom) }
