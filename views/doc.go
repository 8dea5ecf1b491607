// Package views holds plaudhook's templ components and the small helpers they format values
// with. Components do no I/O: handlers pass in everything they render, including the Page
// struct every full page needs. The same row component renders a page load and a live update,
// so the two can never drift apart.
//
// views imports db for its record types only.
package views
