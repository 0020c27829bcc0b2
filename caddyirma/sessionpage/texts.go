package sessionpage

// texts holds the page wording per language, per kind of page; "common"
// holds what every kind shares.
var texts = map[string]map[string]map[string]string{
	"en": {
		"common": {
			"scan":          "Scan this QR code with the Yivi app.",
			"or":            "On this phone?",
			"open":          "Open the Yivi app",
			"getapp":        "No Yivi app yet? It is free in the App Store and Google Play.",
			"waiting":       "Waiting for the Yivi app…",
			"pairing":       "Your Yivi app shows a pairing code. Enter it here:",
			"pairinglabel":  "Pairing code",
			"pairingok":     "Continue",
			"pairingwrong":  "That is not the code the Yivi app shows. Try again.",
			"connected":     "Follow the instructions in the Yivi app.",
			"cancelled":     "The session was cancelled in the Yivi app.",
			"timeout":       "The session took too long and has expired.",
			"failed":        "Something went wrong; the session could not be completed.",
			"retry":         "Try again",
			"noscript":      "This page needs JavaScript to follow the session. Reload the page when you are done in the app.",
			"qrlabel":       "QR code to scan with the Yivi app",
			"redirecting":   "Done. Taking you onwards…",
			"starting":      "Preparing the QR code…",
			"noscriptstart": "This page needs JavaScript to start the session by itself. Without it:",
			"showqr":        "Show the QR code",
		},
		"issue": {
			"title": "Receive your cards",
			"intro": "Add these cards to your Yivi app.",
			"done":  "Done: the cards are in your Yivi app.",
		},
		"login": {
			"title": "Log in with Yivi",
			"intro": "This page asks you to show some of your data with the Yivi app.",
			"done":  "Done: you are logged in.",
		},
		"signed": {
			"title":    "Signed",
			"intro":    "You signed this statement with your Yivi app:",
			"download": "Download the signature",
			"verify":   "Verify a signature",
		},
		"redirect": {
			"title":   "Log in with Yivi",
			"message": "This page asks you to log in with the Yivi app.",
			"retry":   "Log in",
		},
		"refused": {
			"title":   "Access refused",
			"message": "What you showed with the Yivi app does not give access to this page.",
		},
		"unavailable": {
			"title":   "Temporarily unavailable",
			"message": "The login service cannot reach its session store right now. Please try again in a few seconds.",
		},
		"busy": {
			"title":   "Too many sessions",
			"message": "Too many Yivi sessions were started from your address. Please wait a moment, then try again.",
		},
		"logout": {
			"title":   "Log out",
			"message": "Log out of this site?",
			"button":  "Log out",
			"back":    "Stay logged in",
		},
		"logoutrefused": {
			"title":   "Not logged out",
			"message": "This request to log out did not come from this site, or your browser did not say where it came from. Use the site's own Log out button.",
			"retry":   "Log out",
		},
		"sign": {
			"title": "Sign with Yivi",
			"intro": "Sign the statement with your data in the Yivi app.",
			"done":  "Done: the statement is signed.",
		},
	},
	"nl": {
		"common": {
			"scan":          "Scan deze QR-code met de Yivi-app.",
			"or":            "Op deze telefoon?",
			"open":          "Open de Yivi-app",
			"getapp":        "Nog geen Yivi-app? Die is gratis in de App Store en Google Play.",
			"waiting":       "Wachten op de Yivi-app…",
			"pairing":       "Uw Yivi-app toont een koppelcode. Voer die hier in:",
			"pairinglabel":  "Koppelcode",
			"pairingok":     "Doorgaan",
			"pairingwrong":  "Dat is niet de code die de Yivi-app toont. Probeer het opnieuw.",
			"connected":     "Volg de instructies in de Yivi-app.",
			"cancelled":     "De sessie is in de Yivi-app geannuleerd.",
			"timeout":       "De sessie duurde te lang en is verlopen.",
			"failed":        "Er ging iets mis; de sessie kon niet worden afgerond.",
			"retry":         "Opnieuw proberen",
			"noscript":      "Deze pagina heeft JavaScript nodig om de sessie te volgen. Herlaad de pagina als u klaar bent in de app.",
			"qrlabel":       "QR-code om te scannen met de Yivi-app",
			"redirecting":   "Klaar. U wordt doorgestuurd…",
			"starting":      "De QR-code wordt klaargezet…",
			"noscriptstart": "Deze pagina heeft JavaScript nodig om de sessie zelf te starten. Zonder JavaScript:",
			"showqr":        "Toon de QR-code",
		},
		"issue": {
			"title": "Ontvang uw kaartjes",
			"intro": "Voeg deze kaartjes toe aan uw Yivi-app.",
			"done":  "Klaar: de kaartjes staan in uw Yivi-app.",
		},
		"login": {
			"title": "Inloggen met Yivi",
			"intro": "Deze pagina vraagt u om enkele gegevens te tonen met de Yivi-app.",
			"done":  "Klaar: u bent ingelogd.",
		},
		"signed": {
			"title":    "Ondertekend",
			"intro":    "U hebt deze verklaring ondertekend met uw Yivi-app:",
			"download": "Download de handtekening",
			"verify":   "Een handtekening controleren",
		},
		"redirect": {
			"title":   "Inloggen met Yivi",
			"message": "Deze pagina vraagt u in te loggen met de Yivi-app.",
			"retry":   "Inloggen",
		},
		"refused": {
			"title":   "Geen toegang",
			"message": "Wat u met de Yivi-app liet zien, geeft geen toegang tot deze pagina.",
		},
		"unavailable": {
			"title":   "Tijdelijk niet beschikbaar",
			"message": "De inlogdienst kan haar sessieopslag nu niet bereiken. Probeer het over een paar seconden opnieuw.",
		},
		"busy": {
			"title":   "Te veel sessies",
			"message": "Vanaf uw adres zijn te veel Yivi-sessies gestart. Wacht even en probeer het dan opnieuw.",
		},
		"logout": {
			"title":   "Uitloggen",
			"message": "Uitloggen van deze site?",
			"button":  "Uitloggen",
			"back":    "Ingelogd blijven",
		},
		"logoutrefused": {
			"title":   "Niet uitgelogd",
			"message": "Dit verzoek om uit te loggen kwam niet van deze site, of uw browser zei niet waar het vandaan kwam. Gebruik de eigen knop Uitloggen van de site.",
			"retry":   "Uitloggen",
		},
		"sign": {
			"title": "Ondertekenen met Yivi",
			"intro": "Onderteken de verklaring met uw gegevens in de Yivi-app.",
			"done":  "Klaar: de verklaring is ondertekend.",
		},
	},
}
