// Package web is plaudhook's HTTP surface: the webhook endpoints, the live stream, sign-in and
// the pages. routes.go lists every URL. Storage is reached through small interfaces declared
// beside the handlers that use them; *db.DB satisfies them.
//
// web imports views, static and db; nothing imports web except cmd.
package web
