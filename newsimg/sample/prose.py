"""What texts are made of besides the picture: each section's prose, generic filler
sentences, people, towns, photo agencies, weekdays and the news sites articles come from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SectionStyle:
    """What a section's pictures and texts share: objects, tags and its kind of prose.

    ``contexts`` end headlines ("at the season opener"), ``topics`` start them ("Cup final: ..."),
    ``tails`` close the lead paragraph and ``fillers`` make the later paragraphs. Tails and fillers
    never name a colour, an object, a count or a scene (a test checks), so only the lead ties the
    text to the picture, as in real news.
    """

    objects: tuple[str, ...]
    tags: tuple[str, ...]
    topics: tuple[str, ...]
    contexts: tuple[str, ...]
    tails: tuple[str, ...]
    fillers: tuple[str, ...]


# One block per section: "== Section", then "field: value" lines; list fields separate their
# items with " | ", and each "tail:" or "filler:" line adds one sentence. Lines starting with two
# spaces continue the line above. Placeholders in braces are filled by _Writer._fill.
SECTION_TEXT = """
== Art & Design
objects: vase | sculpture | canvas
tags: art | design | exhibitions | museums
topics: Gallery opening | Design week | Art fair
contexts: at a new gallery show | as design week opens | in an open-air art installation
tail: The work, by the artist {name}, goes on show at the {town} Museum of Art next week.
tail: Curators in {town} said the piece was made to be seen from every angle.
filler: The exhibition brings together {num} works made over the past decade.
filler: {name}, who curated the show, said the artists share an interest in everyday materials.
filler: Admission is free on the first Sunday of each month.
filler: Critics have praised the way the galleries lead visitors from room to room.
filler: The museum plans to tour the collection to {town} next year.
== Automobiles
objects: car | truck | van
tags: autos | motoring | electric-vehicles
topics: Auto show | Road test | New models
contexts: at the auto show | as electric models arrive | ahead of a new vehicle launch
tail: The vehicles were unveiled by a carmaker from {town} ahead of the motor show.
tail: Dealers in {town} expect the models to reach showrooms by autumn.
filler: The company said its new battery offers a range of about {big} miles on a charge.
filler: Prices start at just under ${num},000 before tax credits.
filler: {name}, an industry analyst, said demand for electric vehicles had cooled this year.
filler: The carmaker has invested heavily in a plant outside {town}.
filler: Reviewers praised the quiet cabin but questioned the charging times.
== Books
objects: book | lamp | mug
tags: literature | reading | authors
topics: Literary festival | New fiction | Reading list
contexts: at a literary festival | as a new novel is released | at a reading for young authors
tail: The display marked the launch of {name}'s new novel at the {town} literary festival.
tail: Publishers in {town} said the season's fiction list was the strongest in years.
filler: The novel follows a family over {num} years of upheaval.
filler: {name}'s debut sold more than {num},000 copies in its first month.
filler: The author will read from the new work at libraries across the region.
filler: Critics called the prose spare and unsentimental.
filler: Independent shops in {town} reported strong sales of the paperback.
== Dance
objects: dress | fan | drum
tags: dance | ballet | performance
topics: Dance festival | Ballet premiere | Choreography
contexts: at a dance festival | as the ballet season opens | during a new dance premiere
tail: The company, led by the choreographer {name}, performs in {town} this week.
tail: Dancers from {town} rehearsed the piece for months before the premiere.
filler: The choreography blends classical steps with hip-hop.
filler: The company's {num} dancers rehearse six days a week.
filler: {name} said the score was written especially for the production.
filler: Performances run through the end of the month at the {town} Opera Hall.
filler: Critics praised the duet in the second act.
== Economy
objects: coin | crate | flag
tags: economy | inflation | markets
topics: Economic outlook | Inflation report | Jobs data
contexts: as inflation cools | ahead of the jobs report | as the central bank meets
tail: The display outside the {town} exchange was part of a campaign on household costs.
tail: Economists in {town} said the picture captured the mood of the markets.
filler: Consumer prices rose {pct} percent over the past year.
filler: The central bank is expected to hold interest rates steady next month.
filler: {name}, chief economist at a bank in {town}, said growth remained uneven.
filler: Hiring slowed in manufacturing but picked up in services.
filler: Wages have grown faster than prices for the first time in {num} months.
== Education
objects: globe | backpack | book
tags: education | schools | students
topics: Back to school | Classroom | Campus life
contexts: as the school year begins | at a school open day | on the first day of term
tail: Teachers at a school in {town} set up the display for their new pupils.
tail: The school district in {town} said enrolment had risen this year.
filler: The district employs about {big} teachers across its schools.
filler: {name}, a principal in {town}, said class sizes were still too large.
filler: The state has promised new funding for reading programmes.
filler: Students will sit their exams in the spring.
filler: Parents raised concerns about the cost of supplies at a recent meeting.
== Fashion
objects: dress | hat | handbag
tags: fashion | runway | designers
topics: Fashion week | Runway report | Spring collections
contexts: at fashion week | on the runway this season | in a new spring collection
tail: The look opened the show by the designer {name} in {town}.
tail: Buyers in {town} said the collection would be in stores by autumn.
filler: The collection drew on archive pieces from the label's early years.
filler: {name} has designed for the label since {year}.
filler: Models walked to a live string quartet.
filler: Editors in the front row applauded the tailoring.
filler: The brand said it would cut its use of new fabrics by half.
== Food
objects: plate | bowl | cake
tags: food | cooking | restaurants
topics: Food festival | Recipe of the week | Restaurant review
contexts: at a harvest food festival | in a new restaurant | for a weekend cooking class
tail: The chef {name} prepared the dishes for a tasting menu in {town}.
tail: Cooks in {town} said the festival drew record crowds this year.
filler: The tasting menu changes with the seasons and costs ${num} a head.
filler: {name} trained in kitchens across Europe before opening the restaurant in {year}.
filler: Most of the produce comes from farms within an hour of {town}.
filler: Reservations open at the start of each month and fill quickly.
filler: The recipe calls for slow roasting and plenty of fresh herbs.
== Global Business
objects: ship | container | tower
tags: business | trade | companies
topics: Global trade | Business report | Supply chains
contexts: as global trade picks up | at a busy port | as new tariffs take effect
tail: The picture was taken at the port of {town}, where cargo volumes have climbed.
tail: Executives in {town} said freight costs were finally falling.
filler: Exports rose {pct} percent in the last quarter.
filler: {name}, who heads a logistics firm in {town}, said delays had eased.
filler: The company reported quarterly revenue above analysts' forecasts.
filler: Trade officials are due to meet in {town} next month.
filler: Shares of the group rose after the results were published.
== Health
objects: heart | bottle | apple
tags: health | medicine | hospitals
topics: Health campaign | Medical research | Public health
contexts: in a public health campaign | as a new clinic opens | for a hospital fundraiser
tail: The image was made for a campaign by the {town} health department.
tail: Doctors in {town} said the campaign had already changed habits.
filler: The study followed {big} patients over {num} years.
filler: {name}, a physician in {town}, said early screening saves lives.
filler: The hospital plans to add {num} beds by next year.
filler: Researchers cautioned that the findings need to be confirmed.
filler: Health officials urged residents to get vaccinated before the autumn.
== Media
objects: camera | microphone | screen
tags: media | journalism | newsrooms
topics: Media | Newsroom | Broadcasting
contexts: at a newsroom open day | as a new podcast launches | at the press awards
tail: The setup belongs to a radio station in {town} celebrating its anniversary.
tail: Journalists in {town} said the awards honoured local reporting.
filler: The network said its audience had grown {pct} percent this year.
filler: {name}, the station's editor, said trust in local news remained high.
filler: The newspaper will end its print edition next spring.
filler: Advertising revenue continued to fall across the industry.
filler: The podcast reaches about {num},000 listeners a week.
== Movies
objects: ticket | screen | spotlight
tags: movies | film | cinema
topics: Film festival | Box office | Premiere
contexts: at the film festival | ahead of a movie premiere | as the box office recovers
tail: The scene appears in the new film by the director {name}, opening in {town} soon.
tail: Cinemas in {town} reported their busiest weekend of the year.
filler: The film runs about {mins} minutes.
filler: {name} plays a retired detective drawn into a final case.
filler: The movie earned ${num} million in its opening weekend.
filler: Critics praised the score and the cinematography.
filler: The director shot most of the film on location near {town}.
== Music
objects: guitar | drum | microphone
tags: music | concerts | albums
topics: Concert review | New album | Music festival
contexts: at a music festival | before a sold-out concert | as the band's new album drops
tail: The band, fronted by {name}, plays {town} on the last date of its tour.
tail: Promoters in {town} said the festival sold out within hours.
filler: The album was recorded in {num} days in a studio outside {town}.
filler: {name} wrote most of the songs during the pandemic.
filler: The tour will visit {num} venues across the country.
filler: Critics called the record the band's most ambitious yet.
filler: The encore drew the loudest cheers of the show.
== Opinion
objects: flag | megaphone | umbrella
tags: opinion | politics | debate
topics: Opinion | Our view | Guest essay
contexts: at a rally for change | as the debate heats up | in a protest outside the council
tail: The protest outside {town} council was the largest in years, the writer {name} argues.
tail: Readers in {town} have written to us about the protest in large numbers.
filler: It is time for lawmakers to listen to the people they represent.
filler: {name} is a columnist and the author of a history of civic protest.
filler: The debate over the budget has exposed deep divisions.
filler: Compromise is not weakness; it is how democracies work.
filler: Voters will have their say at the ballot box next year.
== Real Estate
objects: house | door | tower
tags: real-estate | housing | property
topics: Real estate | Housing market | Home of the week
contexts: in a new housing development | as home prices climb | at a property viewing
tail: The property in {town} went on the market this month.
tail: Agents in {town} said buyers were returning after a slow spring.
filler: The median price in the area rose {pct} percent from a year earlier.
filler: {name}, a broker in {town}, said listings had been scarce.
filler: Mortgage rates edged lower this week.
filler: The development will include {big} apartments and a public park.
filler: Planning approval is expected by the end of the year.
== Science
objects: rocket | planet | flask
tags: science | space | research
topics: Science | Space | Research
contexts: at a science fair | as a space mission nears launch | in a university laboratory
tail: Researchers at the {town} institute built the model for a public science week.
tail: Scientists in {town} said the project had inspired a new generation of students.
filler: The mission is scheduled to launch next spring.
filler: {name}, an astrophysicist, said the data could reshape existing models.
filler: The experiment took {num} months to design.
filler: The findings were published in a peer-reviewed journal this week.
filler: Funding for the laboratory was renewed for another {small} years.
== Sports
objects: ball | trophy | goal
tags: sports | football | league
topics: Cup final | Season opener | League report
contexts: at the season opener | ahead of the cup final | as the league resumes
tail: Supporters gathered before the match between {town} and its local rivals.
tail: The club said the display was part of the build-up to the league final in {town}.
filler: The team has won {small} of its last 10 matches.
filler: {name}, the coach, said the squad was fit and ready.
filler: The striker scored twice in the first half.
filler: Kickoff is scheduled for 3 p.m. local time.
filler: The league title will be decided on the final day of the season.
== Style
objects: hat | handbag | umbrella
tags: style | trends | lifestyle
topics: Style | Trend report | What to wear
contexts: in this season's trend report | at a vintage market | on the style pages this week
tail: The stylist {name} picked the look for a shoot in {town}.
tail: Shoppers in {town} have been snapping up the trend all season.
filler: Vintage pieces are selling faster than ever online.
filler: {name} recommends pairing bold accessories with simple tailoring.
filler: The trend started on social media before reaching the shops.
filler: Prices range from ${num} to several hundred dollars.
filler: Stylists say the look works for almost any occasion.
== Technology
objects: laptop | phone | robot
tags: technology | gadgets | startups
topics: Tech | Gadget review | Startups
contexts: at a technology expo | as a new device goes on sale | at a startup demo day
tail: The startup, founded by {name}, showed the product at an expo in {town}.
tail: Engineers in {town} said the prototype took a year to build.
filler: The device runs on a new chip that uses {pct} percent less power.
filler: {name}, the company's chief executive, said sales would begin next quarter.
filler: Privacy advocates raised questions about how data would be stored.
filler: The software update adds support for {num} languages.
filler: Investors poured ${num} million into the company last year.
== Television
objects: television | sofa | camera
tags: television | tv | streaming
topics: TV review | Streaming | This week on TV
contexts: in a new streaming series | as the new TV season begins | on the set of a hit show
tail: The scene comes from the new series created by {name}, filmed near {town}.
tail: Viewers in {town} made the show the most watched of the week.
filler: The series returns for a second season in the autumn.
filler: {name} plays a detective with a complicated past.
filler: Each episode runs about {num} minutes.
filler: The streaming service said the premiere drew {big},000 viewers.
filler: Critics praised the writing and the ensemble cast.
== Theater
objects: mask | curtain | spotlight
tags: theater | stage | drama
topics: Theater review | On stage | Stage premiere
contexts: at a theater premiere | before the show begins | in a new stage production
tail: The production, directed by {name}, runs at the {town} Civic Theater until next month.
tail: Actors in {town} rehearsed for weeks before the premiere.
filler: The play runs about {mins} minutes with an intermission.
filler: {name} gives a commanding performance in the lead role.
filler: The set design turns the small stage into a crowded port.
filler: The run has been extended by {small} weeks due to demand.
filler: The playwright drew on family stories for the script.
== Travel
objects: suitcase | plane | balloon
tags: travel | tourism | holidays
topics: Travel | Weekend getaway | Destinations
contexts: as the holiday season begins | on a weekend getaway | as tourists return
tail: Travellers passing through {town} stopped to take pictures of the scene.
tail: Tourism officials in {town} said visitor numbers were up this year.
filler: Flights from the capital take about {small} hours.
filler: {name}, a travel writer, recommends visiting outside the peak months.
filler: Hotels in the region reported occupancy of {num} percent.
filler: Local guides offer walking tours in several languages.
filler: The region's rail link reopened after repairs this year.
== Well
objects: apple | mat | bottle
tags: wellness | fitness | wellbeing
topics: Well | Fitness | Healthy habits
contexts: at a morning yoga class | in a wellness retreat | as a fitness challenge begins
tail: The instructor {name} leads the class in {town} every weekend.
tail: Participants in {town} said the routine helped them sleep better.
filler: Experts recommend at least 150 minutes of moderate exercise a week.
filler: {name}, a fitness coach, says consistency matters more than intensity.
filler: Stretching before bed can improve sleep quality, studies suggest.
filler: Drinking enough water is easy to overlook in busy weeks.
filler: The class is free for residents of {town} over 65.
== Your Money
objects: coin | wallet | jar
tags: savings | budgeting | money
topics: Your money | Savings | Budgeting
contexts: in a savings campaign | as interest rates change | for a lesson in budgeting
tail: The picture illustrates advice from the financial planner {name} in {town}.
tail: Savers in {town} are moving money into higher-yield accounts.
filler: High-yield savings accounts now pay about {pct} percent.
filler: {name}, a financial planner, suggests keeping six months of expenses in reserve.
filler: Credit card balances have climbed to a record.
filler: Automating transfers on payday makes saving easier.
filler: Check fees carefully before switching banks.
"""


def _parse_sections(text: str) -> dict[str, SectionStyle]:
    lines: list[str] = []
    for line in text.strip().splitlines():
        if line.startswith("  "):
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    sections: dict[str, dict[str, list[str]]] = {}
    for line in lines:
        if line.startswith("== "):
            fields = sections.setdefault(line[3:], {})
            continue
        key, value = line.split(": ", 1)
        if key in ("tail", "filler"):
            fields.setdefault(key + "s", []).append(value)
        else:
            fields[key] = value.split(" | ")
    return {
        name: SectionStyle(**{k: tuple(v) for k, v in f.items()}) for name, f in sections.items()
    }


SECTIONS: dict[str, SectionStyle] = _parse_sections(SECTION_TEXT)
GENERIC_FILLERS = (
    "{name} said the plans had been months in the making.",
    "Officials in {town} are expected to publish more details later this month.",
    "The announcement drew a mixed response from local residents.",
    "A spokesperson for the organisers declined to comment on the cost.",
    "Similar events in {town} have drawn about {num},000 visitors in recent years.",
    '"We wanted to do something people would remember," {name} said.',
    "The project was funded in part by a regional grant awarded in {year}.",
    "Organisers said they would review the results before planning next year's edition.",
    "Local businesses reported a busy weekend as crowds arrived from across the region.",
    "Further events are planned for the autumn, according to a statement.",
    "{name}, who has followed the issue for years, called it an encouraging sign.",
    "Critics argue that the money could have been spent elsewhere.",
    "The council is due to discuss the matter at its next meeting.",
    "Residents of {town} were invited to share their views online.",
    "The organisers thanked volunteers who worked through the weekend.",
)
FIRST_NAMES = (
    "Jane", "Omar", "Lucia", "Kenji", "Amara", "Tom", "Priya", "Mateo", "Sofia", "Daniel",
    "Ines", "Yusuf", "Clara", "Noah", "Mei", "Elena", "Samuel", "Hana", "Victor", "Grace",
)  # fmt: skip
LAST_NAMES = (
    "Doe", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Haddad", "Brennan",
    "Kowalski", "Mendes", "Fischer", "Adeyemi", "Rossi", "Nakamura", "Duarte", "Whitfield",
    "Keller", "Osei", "Varga",
)  # fmt: skip
TOWNS = (
    "Halden", "Port Ellis", "Marrow Bay", "Stonebridge", "Ashford", "Kingsreach", "Elmwood",
    "Northvale", "Riverton", "Castlemoor", "Fairhaven", "Oakridge",
)  # fmt: skip
AGENCIES = ("Harbor Photo Agency", "Northlight Pictures", "Wire Images Collective", "Frame Press")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Site:
    domain: str  # www.<domain>.example
    name: str
    template: str  # a key of TEMPLATES


SITES = (
    Site("dailyharbor", "The Daily Harbor", "classic"),
    Site("metroledger", "Metro Ledger", "modern"),
    Site("northgazette", "North Gazette", "magazine"),
    Site("valleyherald", "Valley Herald", "wordpress"),
)
