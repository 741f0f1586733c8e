// Package bench holds pvlink's measuring tools. Its peer package provides
// the two ends of a test connection: a target server that reports what it
// saw, and a client that checks every byte it sent came back.
package bench
